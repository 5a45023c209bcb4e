"""Calibration and format audit (``detectlab.experiments.calibration``) on tiny sets made here, scored by a
stand-in detector whose P(fake) grows with the image's high-frequency energy (so JPEG and downsizing,
which remove it, must lower the noisy fakes' P(fake), and a lossless PNG round trip must change nothing)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from detectlab.errors import DatasetError
from detectlab.experiments import calibration as cal

SIZE = 32


class SharpnessDetector(nn.Module):
    """logit = k * (mean |x - blur3(x)| - c): a sharpness meter with the Detector interface predict_files uses."""

    def __init__(self, k: float = 60.0, c: float = 0.06):
        super().__init__()
        self.k, self.c = k, c
        self.preprocess = SimpleNamespace(input_size=SIZE)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        blur = nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        return (x - blur).abs().mean(dim=(1, 2, 3)).unsqueeze(1)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.k * (f[:, 0] - self.c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.features(x))


class HalfTemperature:
    """A stand-in for ``detect.trust.Trust``: calibrated P(fake) = sigmoid(logit / 2)."""

    calibration = SimpleNamespace(temperature=2.0)

    def assess(self, feats, logits):
        p = torch.sigmoid(logits / 2).tolist()
        return [SimpleNamespace(p_calibrated=float(v), unlike_training=False, ood_distance=0.0, ood_threshold=1.0)
                for v in p]


def _smooth(rng) -> np.ndarray:
    """A smooth real-looking image: a random colour gradient."""
    t = np.linspace(0, 1, SIZE)
    a, b = rng.uniform(0.1, 0.9, 3), rng.uniform(-0.3, 0.3, 3)
    img = a[None, None] + b[None, None] * (t[:, None, None] + t[None, :, None]) / 2
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def _noisy(rng) -> np.ndarray:
    """A "fake": the same kind of gradient with strong pixel noise planted on it."""
    img = _smooth(rng).astype(float) + rng.normal(0, 40, (SIZE, SIZE, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _write(folder: Path, make, n: int, seed: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(make(rng)).save(folder / f"s{seed}_{i:02d}.png")


@pytest.fixture
def tiny(tmp_path) -> Path:
    root = tmp_path / "set"
    _write(root / "real", _smooth, 12, 1)
    _write(root / "noisy-a", _noisy, 6, 2)
    _write(root / "noisy-b", _noisy, 6, 3)
    return root


@pytest.fixture
def stand_in(monkeypatch):
    loaded = SimpleNamespace(name="sharpness", path=Path("sharpness.safetensors"), detector=SharpnessDetector(),
                             threshold=0.5, trust=None, meta={})
    monkeypatch.setattr(cal, "_load_detector", lambda name: loaded)
    monkeypatch.setattr(cal, "_resolve_detector", lambda name: Path("sharpness.safetensors"))
    return loaded


def _params(root, **kw):
    return {**cal.defaults_calibration(), "data": str(root), "detector": "sharpness", "split": "all",
            "real_folder": "", **kw}


# -- the numbers by hand -------------------------------------------------------------------------------
def test_ece_of_a_hand_made_example_equals_its_hand_computation():
    p = [0.05, 0.15, 0.15, 0.85, 0.95, 0.95, 0.0, 1.0]
    y = [0, 0, 1, 1, 1, 0, 0, 1]
    # bin 0: {0.05, 0.0} conf 0.025, acc 0  -> gap 0.025, weight 2/8
    # bin 1: {0.15, 0.15} conf 0.15, acc 0.5 -> gap 0.35,  weight 2/8
    # bin 8: {0.85} conf 0.85, acc 1        -> gap 0.15,  weight 1/8
    # bin 9: {0.95, 0.95, 1.0} conf 0.9667, acc 2/3 -> gap 0.3, weight 3/8
    hand = (2 * 0.025 + 2 * 0.35 + 1 * 0.15 + 3 * abs(2 / 3 - (0.95 + 0.95 + 1.0) / 3)) / 8
    rel = cal.reliability(p, y, bins=10)
    assert abs(rel.ece - hand) < 1e-9
    assert [b["n"] for b in rel.bins] == [2, 2, 0, 0, 0, 0, 0, 0, 1, 3]
    assert sum(b["n"] for b in rel.bins) == len(p) == rel.n
    assert rel.bins[2]["mean_p_fake"] is None and rel.bins[1]["fraction_fake"] == 0.5
    # a perfectly calibrated example has ECE 0
    assert cal.reliability([0.25] * 4 + [0.75] * 4, [1, 0, 0, 0, 1, 1, 1, 0], bins=2).ece == pytest.approx(0, abs=1e-12)


def test_reliability_refuses_mismatched_or_out_of_range_input():
    with pytest.raises(ValueError, match="equally many"):
        cal.reliability([0.1, 0.2], [0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        cal.reliability([1.5], [1])


def test_the_oracle_threshold_is_at_least_as_accurate_and_marked_optimistic():
    y = [0, 0, 0, 1, 1, 1]
    p = [0.1, 0.2, 0.3, 0.35, 0.4, 0.9]  # at 0.5 two fakes are missed; 0.325 separates all
    ck, oracle = cal.threshold_rows(y, p, 0.5)
    assert (ck["optimistic"], oracle["optimistic"]) == (False, True)
    assert ck["accuracy"] == pytest.approx(4 / 6, abs=1e-4) and oracle["accuracy"] == 1.0
    assert 0.3 < oracle["threshold"] < 0.35


def test_a_cap_per_class_keeps_the_generators_balanced(tiny):
    from detectlab.experiments.core import load_set

    chosen = cal._selection(load_set(tiny, min_generators=0), "all", 4, seed=0)
    assert sum(i.label == 0 for i in chosen) == 4
    assert sorted(i.generator for i in chosen if i.label == 1) == ["noisy-a", "noisy-a", "noisy-b", "noisy-b"]


# -- the experiment ----------------------------------------------------------------------------------------
def test_format_audit_moves_a_sharpness_detector_the_expected_way(tiny, stand_in, tmp_path, monkeypatch):
    monkeypatch.setattr(cal, "AUDIT_CHUNK", 5)  # re-saved and scored in several chunks
    noisy_reals = tmp_path / "noisy-reals"
    _write(noisy_reals, _noisy, 5, 9)
    result = cal.run_calibration(_params(tiny, real_folder=str(noisy_reals)))
    json.dumps(result.tables)  # rows are JSON-serialisable
    assert result.params["formats"] == list(cal.FORMATS) and result.params["detector"] == "sharpness"

    rel = [r for r in result.tables["reliability"] if r["score"] == "P(fake)"]
    assert len(rel) == 10 and sum(r["n"] for r in rel) == 24
    ck = result.tables["thresholds"][0]
    assert ck["accuracy"] == 1.0  # the planted pattern separates the classes

    audit = {(r["format"], r["class"]): r for r in result.tables["format_audit"]}
    assert len(audit) == 8 and all(r["n"] == 12 for r in audit.values())
    png = cal.FORMATS["png"]
    assert audit[(png, "real")]["mean_abs_change"] == 0 and audit[(png, "fake")]["mean_abs_change"] == 0
    for fmt in ("jpeg75", "resize0.5"):
        fake = audit[(cal.FORMATS[fmt], "fake")]
        assert fake["mean_change"] < -0.05, fmt          # less high-frequency energy: less "fake"
        assert fake["mean_change"] < audit[(cal.FORMATS[fmt], "real")]["mean_change"]
    assert "keys on" in result.summary and "does not key" not in result.summary

    fp = {r["set"]: r for r in result.tables["false_positives"]}
    assert fp["real images of the whole folder"]["false_positive_rate"] == 0.0
    assert fp["real-only folder noisy-reals"] == {"set": "real-only folder noisy-reals", "n": 5,
                                                  "false_positive_rate": 1.0,
                                                  "mean_p_fake": fp["real-only folder noisy-reals"]["mean_p_fake"]}
    assert set(result.figures) == {"reliability", "thresholds", "format_audit"}
    assert result.models == {"fitted": 0, "reused": 0} and result.data_fingerprint

    again = cal.run_calibration(result.params)
    assert again.tables == result.tables  # the params reproduce the tables


def test_a_calibrated_checkpoint_gets_a_second_reliability(tiny, stand_in):
    stand_in.trust = HalfTemperature()
    result = cal.run_calibration(_params(tiny, formats=[]))
    rows = result.tables["calibration"]
    assert [r["score"] for r in rows] == ["P(fake)", "calibrated P(fake) (T = 2)"]
    assert len(result.tables["reliability"]) == 20 and result.tables["format_audit"] == []
    assert result.tables["detector"][0]["temperature"] == 2.0
    assert "format_audit" not in result.figures


# -- bad input: one line, before anything runs ------------------------------------------------------
def _one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_a_folder_with_one_class_is_refused_in_one_line(tmp_path, stand_in):
    only_real = tmp_path / "only-real"
    _write(only_real / "real", _smooth, 4, 1)
    with pytest.raises(DatasetError) as exc:
        cal.check_calibration(_params(only_real))
    assert "4 real and 0 fake" in _one_line(exc) and "both classes" in str(exc.value)
    only_fake = tmp_path / "only-fake"
    _write(only_fake / "gen", _noisy, 4, 2)
    with pytest.raises(DatasetError) as exc:
        cal.check_calibration(_params(only_fake))
    assert "no 'real' folder" in _one_line(exc)


def test_an_unknown_detector_is_refused_in_one_line(tiny):
    with pytest.raises(ValueError) as exc:
        cal.check_calibration(_params(tiny, detector="no-such-detector"))
    assert "no-such-detector" in _one_line(exc) and "no such detector" in str(exc.value)


@pytest.mark.parametrize("setting, match", [({"split": "holdout"}, "unknown split"),
                                            ({"limit": -3}, "limit"),
                                            ({"bins": 1}, "bins"),
                                            ({"formats": ["webp"]}, "unknown format webp")])
def test_bad_settings_are_refused(tiny, stand_in, setting, match):
    with pytest.raises(ValueError, match=match) as exc:
        cal.check_calibration(_params(tiny, **setting))
    _one_line(exc)


def test_a_missing_real_only_folder_is_refused(tiny, stand_in, tmp_path):
    with pytest.raises(DatasetError) as exc:
        cal.check_calibration(_params(tiny, real_folder=str(tmp_path / "nowhere")))
    assert "no such folder" in _one_line(exc)


def test_the_format_sentence_names_the_largest_move():
    rows = [{"format": "PNG (lossless)", "class": "real", "n": 5, "mean_change": 0.0, "flipped": 0.0},
            {"format": "JPEG 75", "class": "real", "n": 5, "mean_change": 0.31, "flipped": 0.4},
            {"format": "JPEG 75", "class": "fake", "n": 5, "mean_change": -0.02, "flipped": 0.0}]
    assert cal.format_sentence(rows) == ("JPEG 75 moves real images' P(fake) by +0.31 on average and flips 40 % "
                                         "of their decisions: the detector keys on compression.")
    rows[1].update(mean_change=0.03, flipped=0.0)
    assert cal.format_sentence(rows).startswith("No re-save moves a class's P(fake) by 0.10")


@pytest.mark.parametrize("training, words", [
    ({"augment": {"jpeg_p": 0.2}, "init_from": ""}, "trained with JPEG augmentation"),
    ({"augment": {"jpeg_p": 0.0}, "init_from": ""}, "trained without JPEG augmentation"),
    ({"augment": {"jpeg_p": 0.0}, "init_from": "cnn-resnet18"},
     "fine-tuned from cnn-resnet18's weights without JPEG augmentation of its own"),
    ({"augment": {"jpeg_p": 0.5}, "init_from": "cnn-resnet18"},
     "trained with JPEG augmentation, fine-tuned from cnn-resnet18's weights"),
    ({}, "whose training augmentation is not recorded"),
])
def test_the_summary_says_how_the_checkpoint_met_jpeg(training, words):
    """A detector fine-tuned without JPEG augmentation from one trained with it is not called 'trained without'."""
    assert cal.jpeg_training({"training": training}) == words
