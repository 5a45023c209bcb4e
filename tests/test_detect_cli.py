"""`detectlab eval` and `detectlab predict` on the shipped CNN checkpoint."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from PIL import Image

from detectlab.catalog import shipped_checkpoints


def _process(*args, timeout=600):
    """The command in its own process, as a user runs it (``python -m detectlab``)."""
    return subprocess.run([sys.executable, "-m", "detectlab", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def run(capsys):
    """The command in this process (``detectlab.cli.main``): the same code without a second start-up of torch."""
    from detectlab.cli import main

    def _run(*args) -> subprocess.CompletedProcess:
        capsys.readouterr()
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return _run


@pytest.fixture(scope="module")
def cnn():
    shipped = shipped_checkpoints()
    assert "cnn-resnet18" in shipped, "checkpoints/manifest.json must list the shipped CNN"
    return "cnn-resnet18"


def test_eval_reports_per_generator_metrics(cnn, demo_root, tmp_path, run):
    out_json = tmp_path / "m.json"
    res = run("eval", cnn, str(demo_root), "--split", "test", "--json", str(out_json))
    assert res.returncode == 0, res.stderr
    metrics = json.loads(out_json.read_text())
    from detectlab.generators.designs import DESIGNS
    from detectlab.train.defaults import RESIDUAL_DESIGNS

    for g in DESIGNS:  # every design of the demo, each with its fakes + all reals
        assert g in res.stdout
        assert 0.0 <= metrics["per_group"][g]["ap"] <= 1.0
    assert "balanced_accuracy" in res.stdout and "ap" in res.stdout
    for g in RESIDUAL_DESIGNS:  # the shipped CNN on the designs it was trained on
        assert metrics["per_group"][g]["accuracy"] >= 0.95, g
    # ... and not on the others: the overall number mixes them in (the README's Generalization section)
    assert metrics["per_group"]["latent-transposed-k3"]["accuracy"] < 0.9 and metrics["accuracy"] < 0.95


def test_predict_writes_csv_and_reports_bad_files(cnn, demo_root, tmp_path, run):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    files = [str(demo_root / "real" / "p0000_c0.png"), str(bad)]
    out_csv = tmp_path / "p.csv"
    res = run("predict", cnn, *files, "--csv", str(out_csv), "--heatmaps", str(tmp_path / "maps"))
    assert res.returncode == 1 and "1 of 2 file(s) refused" in res.stderr, res.stderr  # scored the rest, said so
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 2
    assert 0.0 <= float(rows[0]["p_fake"]) <= 1.0 and rows[0]["decision"] in ("real", "fake")
    assert rows[1]["decision"] == "error" and "broken.png" in rows[1]["error"]
    maps = list((tmp_path / "maps").glob("p0000_c0_*.png"))
    assert len(maps) == 1 and Image.open(maps[0]).size == (128, 128)


def test_unknown_checkpoint_is_named(tmp_path):
    res = _process("predict", str(tmp_path / "missing.safetensors"), str(tmp_path))
    assert res.returncode == 2 and "missing.safetensors" in res.stderr and "no such detector" in res.stderr


def test_predict_takes_a_run_id_or_its_label(cnn, demo_root, tmp_path, run, monkeypatch):
    """The CLI resolves names like the app: a run's id (or its picker label) finds its checkpoint."""
    import shutil

    from detectlab.runs import RunStore
    from detectlab.train.layout import RunLayout, new_run_id, runs_db

    home = tmp_path / "home"
    run_id = new_run_id()
    ckpt = RunLayout.default(home).checkpoint(run_id)
    ckpt.parent.mkdir(parents=True)
    shutil.copy(shipped_checkpoints()[cnn], ckpt)
    store = RunStore(runs_db(home))
    store.create(run_id, {"arch": "resnet18"}, "from-cli")
    store.finish(run_id, "finished", {"test": {"accuracy": 0.5}}, checkpoint=str(ckpt))
    label = store.get(run_id).label
    image = str(demo_root / "real" / "p0000_c0.png")
    monkeypatch.setenv("DETECTLAB_HOME", str(home))
    for name in (run_id, label):
        res = run("predict", name, image)
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith(image) and res.stdout.split("\t")[2] in ("real", "fake")


def test_predict_on_a_folder_without_images_says_so_and_writes_nothing(tmp_path, run):
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    out_csv = tmp_path / "p.csv"
    res = run("predict", "spectrum-durrall", str(empty), "--csv", str(out_csv))
    assert res.returncode == 2, res.stdout
    assert "no image files" in res.stderr and "empty_folder" in res.stderr and "p.csv not written" in res.stderr
    assert not out_csv.exists()


def test_eval_says_which_split_and_how_many_images_it_scores(tmp_path, run):
    """A user's small folder: --split test scores a tenth of it, and the output says so and why."""
    from detectlab.data import discover, split

    root = tmp_path / "mine"
    for cls, base in (("real", 20), ("gan", 180)):
        for i in range(30):
            (root / cls).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (32, 32), (base + i,) * 3).save(root / cls / f"s{i:02d}.png")
    n_test = len(split(discover(root).samples, seed=0)["test"])
    out_json = tmp_path / "m.json"
    res = run("eval", "spectrum-durrall", str(root), "--split", "test", "--json", str(out_json))
    assert res.returncode == 0, res.stderr
    assert f"scored: test split (seed 0): {n_test} of 60 images" in res.stdout
    assert "80/10/10 split by source group" in res.stdout and "omit --split" in res.stdout
    assert json.loads(out_json.read_text())["n"] == n_test < 60
    res = run("eval", "spectrum-durrall", str(root))
    assert res.returncode == 0, res.stderr
    assert "scored: all 60 images" in res.stdout


def test_an_interrupted_predict_csv_resumes_with_only_the_rest(cnn, demo_root, tmp_path, run, monkeypatch):
    """Ctrl-C half-way leaves the rows scored so far; a re-run with the same CSV scores only the rest (a row cut short
    by a kill is dropped and re-scored), and the result equals one uninterrupted run."""
    from detectlab.commands import detect as detect_cmd
    from detectlab.detect import predict as predict_mod

    files = [str(p) for p in sorted((demo_root / "real").glob("*.png"))[:10]]
    monkeypatch.setattr(detect_cmd, "CSV_CHUNK", 4)
    real_score = predict_mod.iter_scores
    calls = []

    def interrupted(loaded, todo, **kw):  # the CLI scores one stream: Ctrl-C arrives in its second chunk
        calls.append(list(todo))
        for k, p in enumerate(real_score(loaded, todo, **kw)):
            if k == 5:
                raise KeyboardInterrupt
            yield p

    monkeypatch.setattr(predict_mod, "iter_scores", interrupted)
    out_csv = tmp_path / "p.csv"
    res = run("predict", cnn, *files, "--csv", str(out_csv))
    assert res.returncode == 130, (res.returncode, res.stderr)
    assert [r["file"] for r in csv.DictReader(out_csv.open())] == files[:4]
    with out_csv.open("a") as fh:  # a kill in the middle of writing a row
        fh.write(files[4] + ",0.51")
    seen = []

    def recording(loaded, todo, **kw):
        seen.extend(str(f) for f in todo)
        return real_score(loaded, todo, **kw)

    monkeypatch.setattr(predict_mod, "iter_scores", recording)
    res = run("predict", cnn, *files, "--csv", str(out_csv))
    assert res.returncode == 0 and "4 of 10 file(s) already scored there; scoring the other 6" in res.stderr
    assert seen == files[4:]
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["file"] for r in rows] == files
    monkeypatch.setattr(predict_mod, "iter_scores", real_score)
    whole = tmp_path / "whole.csv"
    assert run("predict", cnn, *files, "--csv", str(whole)).returncode == 0
    assert [r["p_fake"] for r in csv.DictReader(whole.open())] == [r["p_fake"] for r in rows]
    res = run("predict", cnn, *files, "--csv", str(whole))  # nothing left: nothing scored twice
    assert res.returncode == 0 and "10 of 10 file(s) already scored" in res.stderr
    assert len(list(csv.DictReader(whole.open()))) == 10
    res = run("predict", "spectrum-durrall", *files, "--csv", str(whole))  # another detector's scores: not mixed in
    assert res.returncode == 2 and "holds scores of cnn-resnet18, not spectrum-durrall" in res.stderr
