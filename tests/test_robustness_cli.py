"""`detectlab sweep` end to end on a tiny labelled set made here, with the shipped cnn-resnet18."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from detectlab.cli import main


@pytest.fixture
def tiny_set(tmp_path):
    root = tmp_path / "tiny"
    rng = np.random.default_rng(0)
    for folder, noise in (("real", 0.0), ("gen", 0.2)):
        (root / folder).mkdir(parents=True)
        for k in range(4):
            img = np.full((32, 32, 3), 0.3 + 0.1 * k) + rng.normal(0, noise, (32, 32, 3))
            Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(root / folder / f"i{k}.png")
    return root


def test_sweep_writes_table_csv_json_and_plots(tiny_set, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    rc = main(["sweep", "cnn-resnet18", "--data", str(tiny_set), "--split", "all", "--degradation", "jpeg",
               "--levels", "90,30,10", "--chain", "downsize 0.5 > *", "--csv", str(out / "s.csv"),
               "--json", str(out / "s.json"), "--plot", str(out / "s.html"), "--plot", str(out / "s.png"), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "downsize 0.5 → jpeg quality on 8 images" in text
    rows = list(csv.DictReader((out / "s.csv").open()))
    assert [r["quality"] for r in rows] == ["90", "30", "10"] and {r["detector"] for r in rows} == {"cnn-resnet18"}
    assert all(0 <= float(r["accuracy_mean"]) <= 1 and r["n_images"] == "8" for r in rows)
    data = json.loads((out / "s.json").read_text())
    assert data["spec"]["chain"] == "downsize 0.5 → *" and len(data["points"]) == 3
    assert (out / "s.png").read_bytes()[:4] == b"\x89PNG" and "plotly" in (out / "s.html").read_text()


@pytest.mark.parametrize("args, named", [
    (["--degradation", "sharpen"], "unknown degradation 'sharpen'"),
    (["--degradation", "jpeg", "--levels", "100,abc"], "'abc' is not a number"),
    (["--degradation", "blur", "--split", "tset"], "unknown split 'tset'"),
    (["--degradation", "blur", "--data", "/nonexistent/folder"], "/nonexistent/folder"),
])
def test_bad_input_exits_2_naming_the_value(tiny_set, args, named, capsys):
    base = ["sweep", "cnn-resnet18", "--data", str(tiny_set), "--quiet"]
    assert main(base + args) == 2
    assert named in capsys.readouterr().err


def test_one_class_folder_is_refused(tmp_path, capsys):
    root = tmp_path / "onlyreal" / "real"
    root.mkdir(parents=True)
    for k in range(3):
        Image.new("RGB", (16, 16), (k * 40,) * 3).save(root / f"r{k}.png")
    assert main(["sweep", "cnn-resnet18", "--data", str(root.parent), "--split", "all", "--degradation", "blur",
                 "--quiet"]) == 2
    assert "only real images (3)" in capsys.readouterr().err
