"""Mirror models ([Petrželková 2024] Table 4.5) end to end on a tiny data set: two halves trained through
`detectlab train --part`, then `detectlab attack --mirror` and the Attack tab's handlers; the pair's
design (``attacks.mirror_configs``) and `detectlab mirror`, which trains the pair and attacks it."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detectlab import config
from detectlab.cli import main

SET = "mirror-tiny"
TRAIN = ["--arch", "resnet18", "--input-size", "32", "--iterations", "40", "--batch-size", "16", "--lr", "1e-3",
         "--weight-decay", "0", "--threads", "1"]


@pytest.fixture(scope="module")
def tiny_root() -> Path:
    """An uploaded-style data set: real = smooth noise, fake = the same plus a checkerboard (one group per stem)."""
    root = config.datasets_dir() / SET
    if root.exists():
        return root
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32]
    pattern = (((yy + xx) % 2) * 2 - 1) * 18.0
    for name in ("real", "gan"):
        (root / name).mkdir(parents=True)
    for i in range(40):
        base = rng.normal(128, 30, (8, 8, 3))
        img = np.asarray(Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).resize((32, 32), Image.BILINEAR),
                         float)
        Image.fromarray(img.astype(np.uint8)).save(root / "real" / f"{i:03d}.png")
        Image.fromarray(np.clip(img + pattern[..., None], 0, 255).astype(np.uint8)).save(root / "gan" / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def pair(tiny_root) -> tuple[str, str]:
    """Run ids of mirror-A (part 1/2) and mirror-B (part 2/2), trained through the CLI."""
    ids = []
    for part, name in (("1/2", "mirror-A"), ("2/2", "mirror-B")):
        import io
        from contextlib import redirect_stderr, redirect_stdout

        out = io.StringIO()
        with redirect_stdout(out), redirect_stderr(io.StringIO()):
            rc = main(["train", "--data", str(tiny_root), *TRAIN, "--part", part, "--name", name])
        assert rc == 0, out.getvalue()
        ids.append(re.search(r"^run (\S+): finished", out.getvalue(), re.M).group(1))
    return ids[0], ids[1]


@pytest.mark.slow
def test_the_halves_saw_disjoint_parts_and_the_same_test_split(pair):
    from detectlab.catalog import load_detector

    metas = [load_detector(run_id).meta for run_id in pair]
    splits = [json.loads((load_detector(run_id).path.parent / "splits.json").read_text()) for run_id in pair]
    assert [m["training"]["train_part"] for m in metas] == ["1/2", "2/2"]
    a, b = (set(s["train"]) for s in splits)
    assert a and b and not a & b
    assert splits[0]["test"] == splits[1]["test"] and splits[0]["val"] == splits[1]["val"]
    for m, s in zip(metas, splits):
        assert m["data"]["train_part"]["samples"] == len(s["train"]) == m["data"]["splits"]["train"]["samples"]


def test_attack_mirror_command(pair, tiny_root, tmp_path, capsys):
    out = tmp_path / "mirror.csv"
    rc = main(["attack", *pair, "--mirror", "--data", str(tiny_root), "--split", "all", "--eps", "0.02,0.05",
               "--quiet", "--csv", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "mirror models at eps 0.02 [%] ([Petrželková 2024] Table 4.5): rows judged by, columns crafted on" in text
    assert "Petrželková 2024 (two ResNet-50 on disjoint halves, FGSM eps 0.025)" in text
    rows = list(csv.DictReader(out.open()))
    assert [(r["experiment"], r["case"], float(r["eps"])) for r in rows] == [
        ("mirror", c, e) for c in ("A→A", "A→B", "B→A", "B→B") for e in (0.02, 0.05)]
    for r in rows:
        assert int(r["flipped"]) <= int(r["eligible"]) and r["attacker"] in pair and r["judge"] in pair
    # the white box at eps 0.05 flips (nearly) every fake the tiny detectors catch
    white = [float(r["rate"]) for r in rows if r["case"] in ("A→A", "B→B") and float(r["eps"]) == 0.05]
    assert min(white) >= 0.9


@pytest.mark.parametrize("extra,message", [
    ([], "--mirror takes two different detectors"),
    (["--transfer"], "--mirror runs on its own"),
])
def test_attack_mirror_bad_input(pair, tiny_root, capsys, extra, message):
    dets = [pair[0]] if not extra else list(pair)
    rc = main(["attack", *dets, "--mirror", "--data", str(tiny_root), "--quiet", *extra])
    assert rc == 2 and message in capsys.readouterr().err


def _no_progress(*args, **kwargs):
    return None


def test_the_tabs_mirror_experiment(pair):
    from detectlab.ui import attack_tab

    md, table, fig, csv_path = attack_tab.run_mirror(f"uploaded: {SET}", "", "all", 0, pair[0], pair[1], "fgsm",
                                                     "0.02, 0.05", None, _no_progress)
    assert "Mirror models at fgsm eps 0.02: white box A→A" in md and "Petrželková 2024" in md, md
    assert len(table["value"]) == 8 and table["headers"][:3] == ["table", "case", "method"]
    names = [t.name for t in fig.data]
    assert f"{pair[0]} → {pair[1]}" in names and "Petrželková 2024 across halves" in names
    assert Path(csv_path).read_text().count("\n") == 9
    # the same detector twice: a message, the tab keeps working
    md, *rest = attack_tab.run_mirror(f"uploaded: {SET}", "", "all", 0, pair[0], pair[0], "fgsm", "0.02", None,
                                      _no_progress)
    assert md.startswith("**Error:** pick two different detectors") and rest == [None, None, None]
    # the adversarial-training comparison shares the two-detector plumbing
    md, table, fig, _ = attack_tab.run_hardening(f"uploaded: {SET}", "", "all", 0, pair[0], pair[1], "fgsm", "0.05",
                                                 None, _no_progress)
    assert "(a) residuals crafted on the original" in md and len(table["value"]) == 8, md


def test_the_tab_queues_the_mirror_pair_with_cnn_resnet18s_settings(monkeypatch, tiny_root):
    from detectlab.catalog import read_manifest
    from detectlab.train.config import TrainConfig
    from detectlab.ui import attack_tab

    queued = []

    class Manager:
        def submit(self, cfg, name=""):
            TrainConfig.from_dict(cfg)  # as the real run queue does
            queued.append((name, cfg))
            return type("Record", (), {"id": f"run-{len(queued)}"})()

    monkeypatch.setattr(attack_tab.state, "manager", lambda: Manager())
    status, pick_a, pick_b = attack_tab.queue_mirror(f"uploaded: {SET}", "")
    shipped = read_manifest()["checkpoints"]["cnn-resnet18"]["config"]
    assert [n for n, _ in queued] == ["mirror-A", "mirror-B"]
    for (name, cfg), part in zip(queued, ("1/2", "2/2")):
        assert cfg["train_part"] == part and cfg["name"] == name and cfg["data"] == str(tiny_root)
        assert {k: v for k, v in cfg.items() if k not in ("train_part", "name", "data")} == \
            {k: v for k, v in shipped.items() if k not in ("train_part", "name")}
    assert "`run-1` (part 1/2)" in status and "`run-2` (part 2/2)" in status
    assert (pick_a["value"], pick_b["value"]) == ("run-1", "run-2")
    status, *_ = attack_tab.queue_mirror("no such set", "")
    assert status.startswith("**Error:** unknown data set &#x27;no such set&#x27;")


def test_the_mirror_pair_is_the_base_config_on_the_two_halves():
    from detectlab.attacks import MIRROR_BASE, MIRROR_NAMES, mirror_configs
    from detectlab.catalog import read_manifest
    from detectlab.errors import DetectLabError
    from detectlab.train.config import TrainConfig

    shipped = read_manifest()["checkpoints"][MIRROR_BASE]["config"]
    pair = mirror_configs("/data/set", overrides={"iterations": 7, "input_size": 32, "epochs": None})
    assert [name for name, _ in pair] == list(MIRROR_NAMES) == ["mirror-A", "mirror-B"]
    for (name, cfg), part in zip(pair, ("1/2", "2/2")):
        assert (cfg["data"], cfg["train_part"], cfg["name"]) == ("/data/set", part, name)
        assert (cfg["iterations"], cfg["input_size"], cfg["epochs"]) == (7, 32, shipped["epochs"])  # None: kept
        assert {k: v for k, v in cfg.items() if k not in ("data", "train_part", "name", "iterations", "input_size")} \
            == {k: v for k, v in shipped.items() if k not in ("train_part", "name", "iterations", "input_size")}
        TrainConfig.from_dict(cfg)  # plain TrainConfig fields, as the run queue takes them
    with pytest.raises(DetectLabError, match="the shipped no-such and its config are missing"):
        mirror_configs("/data/set", base="no-such")


@pytest.mark.parametrize("args,message", [
    (["--eps", "0.01,x"], "eps list '0.01,x': give numbers separated by commas"),
    (["--eps", "0.5,3"], "eps must be a number in [0, 1]"),
    (["--base", "no-such"], "the shipped no-such and its config are missing"),
    (["--iterations", "-1"], "iterations"),
])
def test_the_mirror_command_refuses_bad_input_before_training(tmp_path, capsys, args, message):
    from detectlab.runs import RunStore
    from detectlab.train.layout import runs_db

    before = len(RunStore(runs_db()).list())
    rc = main(["mirror", "--data", str(tmp_path), *args])
    assert rc == 2 and message in capsys.readouterr().err
    assert len(RunStore(runs_db()).list()) == before  # nothing was queued


@pytest.mark.slow
def test_the_mirror_command_trains_both_halves_and_attacks_them(tiny_root, tmp_path, capsys):
    from detectlab.catalog import load_detector

    out = tmp_path / "mirror.csv"
    rc = main(["mirror", "--data", str(tiny_root), "--input-size", "32", "--iterations", "20", "--batch-size", "16",
               "--threads", "1", "--split", "all", "--eps", "0.02; 0.05", "--quiet", "--csv", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert f"training mirror-A on part 1/2 of {tiny_root}'s train split with cnn-resnet18's settings" in text
    a, b = re.search(r"mirror pair: A = (\S+) \(part 1/2\), B = (\S+) \(part 2/2\)", text).groups()
    metas = [load_detector(run_id).meta for run_id in (a, b)]
    assert [m["training"]["train_part"] for m in metas] == ["1/2", "2/2"]
    assert [m["training"]["iterations"] for m in metas] == [20, 20]
    assert "mirror models at eps 0.05 [%] ([Petrželková 2024] Table 4.5): rows judged by, columns crafted on" in text
    assert "Petrželková 2024 (two ResNet-50 on disjoint halves, FGSM eps 0.025)" in text
    rows = list(csv.DictReader(out.open()))
    assert [(r["experiment"], r["case"], float(r["eps"])) for r in rows] == [
        ("mirror", c, e) for c in ("A→A", "A→B", "B→A", "B→B") for e in (0.02, 0.05)]
    assert {r["attacker"] for r in rows} == {r["judge"] for r in rows} == {a, b}


@pytest.mark.browser
def test_the_mirror_experiment_in_the_browser(pair, tiny_root, page):
    from playwright.sync_api import expect

    # the page's load events (data overview, detector list) cover it until done: slow on a loaded machine
    page.get_by_role("tab", name="Attack", exact=True).click(timeout=240_000)
    page.get_by_role("tab", name="Mirror models", exact=True).click()
    page.locator("#attack-folder textarea, #attack-folder input").first.fill(str(tiny_root))
    page.locator("#attack-split").get_by_label("all", exact=True).check()
    for box, run_id in zip(("#attack-mirror-a", "#attack-mirror-b"), pair):
        picker = page.locator(f"{box} input").first
        picker.fill(run_id)  # a run id typed in: the pickers take any name resolve_detector knows
        picker.press("Enter")
    page.locator("#attack-mirror-eps textarea, #attack-mirror-eps input").first.fill("0.045")
    page.locator("#attack-mirror-run").click()
    findings = page.locator("#attack-mirror-findings")
    # this request's marker: the eps typed above
    expect(findings).to_contain_text("Mirror models at fgsm eps 0.045: white box A→A", timeout=120_000)
    expect(findings).to_contain_text(f"A = {pair[0]}, B = {pair[1]}")
    expect(findings).to_contain_text("Petrželková 2024 (two ResNet-50 on disjoint halves, FGSM eps 0.025)")
