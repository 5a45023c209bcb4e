"""`detectlab attack` on a few demo test images with the shipped detectors."""

from __future__ import annotations

import csv

import pytest

from detectlab.cli import main


def test_attack_command_transfer_and_blur(demo_root, tmp_path, capsys):
    out = tmp_path / "attack.csv"
    rc = main(["attack", "cnn-resnet18", "spectrum-durrall", "--data", str(demo_root), "--limit", "12",
               "--eps", "0.02", "--transfer", "--defence-blur", "2", "--quiet", "--csv", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "spectrum-durrall: gradient attacks do not apply" in text
    assert "transfer matrix at eps 0.02" in text and "Petrželková 2024" in text
    rows = list(csv.DictReader(out.open()))
    transfer_rows = [r for r in rows if r["experiment"] == "transfer"]
    # one attacker (the spectrum baseline only judges) x two judges x one eps
    assert [(r["attacker"], r["judge"]) for r in transfer_rows] == [("cnn-resnet18", "cnn-resnet18"),
                                                                    ("cnn-resnet18", "spectrum-durrall")]
    assert all(int(r["flipped"]) <= int(r["eligible"]) for r in transfer_rows)
    blur = [r["case"] for r in rows if r["experiment"] == "blur-defence"]
    assert blur == ["clean", "blurred clean", "adversarial", "blurred adversarial"]


@pytest.mark.parametrize("args,message", [
    (["--eps", "2"], "eps must be a number in [0, 1]"),
    (["--eps", "0.01,x"], "eps list '0.01,x': give numbers separated by commas, e.g. 0.01,0.02,0.05"),
    (["--eps", ","], "give at least one eps"),
    (["--eps", "0.01", "--split", "tests"], "unknown split 'tests'"),
])
def test_attack_command_bad_input(demo_root, capsys, args, message):
    rc = main(["attack", "cnn-resnet18", "--data", str(demo_root), "--limit", "4", "--quiet", *args])
    assert rc == 2 and message in capsys.readouterr().err


def test_only_a_spectrum_detector_is_refused(demo_root, capsys):
    rc = main(["attack", "spectrum-durrall", "--data", str(demo_root), "--limit", "4", "--quiet"])
    assert rc == 2 and "gradient attacks do not apply" in capsys.readouterr().err
