"""`detectlab eval` and `detectlab predict` on the shipped CNN checkpoint."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from PIL import Image

from detectlab.catalog import shipped_checkpoints


def _run(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "detectlab", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cnn():
    shipped = shipped_checkpoints()
    assert "cnn-resnet18" in shipped, "checkpoints/manifest.json must list the shipped CNN"
    return "cnn-resnet18"


def test_eval_reports_per_generator_metrics(cnn, demo_root, tmp_path):
    out_json = tmp_path / "m.json"
    res = _run("eval", cnn, str(demo_root), "--split", "test", "--json", str(out_json))
    assert res.returncode == 0, res.stderr
    metrics = json.loads(out_json.read_text())
    for g in ("transposed-conv", "resize-conv", "pixel-shuffle"):
        assert g in res.stdout
        assert 0.0 <= metrics["per_group"][g]["ap"] <= 1.0
    assert "balanced_accuracy" in res.stdout and "ap" in res.stdout
    assert metrics["accuracy"] >= 0.95  # the shipped CNN on the generators it was trained on


def test_predict_writes_csv_and_reports_bad_files(cnn, demo_root, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    files = [str(demo_root / "real" / "p0000_c0.png"), str(bad)]
    out_csv = tmp_path / "p.csv"
    res = _run("predict", cnn, *files, "--csv", str(out_csv), "--heatmaps", str(tmp_path / "maps"))
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 2
    assert 0.0 <= float(rows[0]["p_fake"]) <= 1.0 and rows[0]["decision"] in ("real", "fake")
    assert rows[1]["decision"] == "error" and "broken.png" in rows[1]["error"]
    maps = list((tmp_path / "maps").glob("p0000_c0_*.png"))
    assert len(maps) == 1 and Image.open(maps[0]).size == (128, 128)


def test_unknown_checkpoint_is_named(tmp_path):
    res = _run("predict", str(tmp_path / "missing.safetensors"), str(tmp_path))
    assert res.returncode == 2 and "no such checkpoint" in res.stderr
