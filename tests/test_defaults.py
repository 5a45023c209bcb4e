"""Findings are computed from the manifest's numbers, in both directions."""

import json

import pytest

from detectlab import config
from detectlab import catalog as defaults


def _manifest(tmp_path, monkeypatch, accs):
    ck = {name: {"arch": name, "test": {"accuracy": a, "balanced_accuracy": a, "ap": a}} for name, a in accs.items()}
    (tmp_path / "manifest.json").write_text(json.dumps({"checkpoints": ck}))
    monkeypatch.setattr(config, "CHECKPOINT_DIR", tmp_path)


@pytest.mark.parametrize("spectrum,cnn,word", [(0.97, 0.95, "contradicts"), (0.80, 0.99, "agrees")])
def test_spectrum_vs_cnn_statement(tmp_path, monkeypatch, spectrum, cnn, word):
    _manifest(tmp_path, monkeypatch, {"spectrum-durrall": spectrum, "cnn-resnet18": cnn})
    (line,) = defaults.findings()
    assert word in line and f"{100 * spectrum:.1f} %" in line and f"{100 * cnn:.1f} %" in line


def test_shipped_table_rows(tmp_path, monkeypatch):
    _manifest(tmp_path, monkeypatch, {"cnn-resnet18": 0.9123456})
    assert defaults.shipped_table() == [["cnn-resnet18", "cnn-resnet18", 0.9123, 0.9123, 0.9123, None, None, None, None,
                                         None, None, None, ""]]


def test_shipped_table_puts_held_out_false_positives_beside_the_demo_numbers(tmp_path, monkeypatch):
    _manifest(tmp_path, monkeypatch, {"cnn-resnet18": 0.97})
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["heldout"] = {"cnn-resnet18": {"demo_test_reals": 0.0596, "full_tiled": 0.19512, "full_resized": 0.0312,
                                     "crops": 0.2252, "demo_blur_sigma1": 0.881, "demo_downup_2x": 0.0044,
                                     "designs": {"a": 0.9, "b": 0.2}}}
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    (row,) = defaults.shipped_table()
    assert dict(zip(defaults.SHIPPED_TABLE_HEADERS, row)) == {
        "name": "cnn-resnet18", "arch": "cnn-resnet18", "test acc": 0.97, "balanced acc": 0.97, "AP": 0.97,
        "caught of unseen designs": 0.55, "FP demo reals": 0.06, "FP held-out photos (full, resized)": 0.031, "FP held-out photos (full, tiled)": 0.195,
        "FP held-out crops": 0.225, "FP demo reals after blur σ 1": 0.881, "FP demo reals after 2× down-up": 0.004,
        "backbone weights": ""}


def _heldout(tmp_path, monkeypatch, rates: dict):
    _manifest(tmp_path, monkeypatch, {"cnn-resnet18": 0.97})
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["heldout"] = {"cnn-resnet18": rates | {"counts": {"heldout_photos": 41},
                                             "full_tiled_by_package": {"a": 0.0, "b": 0.1}}}
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    return defaults.heldout_record(tmp_path / "cnn-resnet18.safetensors")


def test_a_detector_within_the_targets_gets_no_warning(tmp_path, monkeypatch):
    record = _heldout(tmp_path, monkeypatch, {"full_resized": 0.0, "full_tiled": 0.05, "crops": 0.03,
                                              "demo_blur_sigma1": 0.02, "demo_downup_2x": 0.01})
    assert record.misses("resize") == [] and record.misses("tiles") == []
    text = record.describe("resize")
    assert "⚠" not in text and "41 held-out real photos (from 2 packages" in text and "0 % fake (resized" in text
    assert "a rate over other photos, not a check of this one" in text


def test_a_detector_missing_a_target_is_named_with_the_rate_it_misses(tmp_path, monkeypatch):
    record = _heldout(tmp_path, monkeypatch, {"full_resized": 0.05, "full_tiled": 0.68, "crops": 0.03,
                                              "demo_blur_sigma1": 0.51, "demo_downup_2x": 0.10})
    assert record.misses("resize") == ["blurred demo reals 51 % (target ≤ 15 %)"]
    assert record.misses("tiles") == ["held-out photos 68 % (target ≤ 10 %)", "blurred demo reals 51 % (target ≤ 15 %)"]
    assert record.describe("tiles").startswith("⚠ **Weak evidence on real photos:**")
    assert record.photo_rate("tiles") == 0.68 and record.photo_rate("resize") == 0.05


def test_a_detector_blind_to_an_unseen_design_says_so_beside_its_verdict(tmp_path, monkeypatch):
    good = {"full_resized": 0.05, "full_tiled": 0.05, "crops": 0.03, "demo_blur_sigma1": 0.1, "demo_downup_2x": 0.1}
    record = _heldout(tmp_path, monkeypatch, good | {"designs": {"latent-bilinear": 0.95, "denoiser-pixel-shuffle": 0.25},
                                                     "designs_uncertain": {"latent-bilinear": 0.0,
                                                                           "denoiser-pixel-shuffle": 0.3}})
    assert record.designs_caught == pytest.approx(0.6)
    assert record.misses("resize") == ["unseen design denoiser-pixel-shuffle 25 % caught (target ≥ 90 %)"]
    assert record.evidence_line("resize") == ("on generator designs it never saw: 60 % caught · on real photos it never "
                                              "saw: 5 % called fake")
    text = record.describe("resize")
    assert text.startswith("⚠ **Weak evidence on designs it never saw:**")
    assert "latent-bilinear 95 %, denoiser-pixel-shuffle 25 %" in text and "15 % more were flagged" in text
    assert "a REAL verdict from it may be a fake from a design it never saw" in text
    both = _heldout(tmp_path, monkeypatch, good | {"crops": 0.4, "designs": {"latent-bilinear": 0.5}})
    assert both.describe("resize").startswith("⚠ **Weak evidence on real photos and on designs it never saw:**")
    caught = _heldout(tmp_path, monkeypatch, good | {"designs": {"latent-bilinear": 0.95, "denoiser-pixel-shuffle": 0.9}})
    assert caught.misses("resize") == [] and "⚠" not in caught.describe("resize")
    assert "≥ 90 % caught of each unseen design" in caught.describe("resize")
    unmeasured = _heldout(tmp_path, monkeypatch, good)
    assert unmeasured.designs_caught is None and "not measured" in unmeasured.evidence_line("resize")


def test_runs_and_unmeasured_checkpoints_have_no_held_out_record(tmp_path, monkeypatch):
    _heldout(tmp_path, monkeypatch, {"full_resized": 0.0})
    assert defaults.heldout_record(tmp_path / "other.safetensors") is None
    assert defaults.heldout_record(tmp_path / "runs" / "cnn-resnet18.safetensors") is None


@pytest.mark.parametrize("name, preset", [
    ("cnn-resnet18-aug", "CNNDetection augmentation (blur+JPEG+downsize, p=0.5)"),
    ("cnn-resnet18-adv", "FGSM adversarial training"),
])
def test_train_tab_presets_train_what_the_shipped_defaults_trained(name, preset):
    from detectlab.train import TrainConfig
    from detectlab.train.defaults import DEFAULTS

    fields, _ = DEFAULTS[name]
    from_preset = TrainConfig().with_preset(preset).to_dict()
    for key, value in TrainConfig(**fields).to_dict().items():
        if key in fields and key != "generators":  # a preset sets how to train; the form's generators, on what
            assert from_preset[key] == value, key


def test_shipped_aug_and_adv_settings_are_the_papers():
    from detectlab.train.defaults import DEFAULTS

    aug = DEFAULTS["cnn-resnet18-aug"][0]["augment"]
    assert (aug.blur_p, aug.jpeg_p, aug.downsize_p, aug.patch_p) == (0.5, 0.5, 0.5, 0.0)
    assert aug.blur_sigma == (0.0, 3.0) and aug.jpeg_quality == (30, 100) and aug.downsize_scale == (0.5, 1.0)
    adv = DEFAULTS["cnn-resnet18-adv"][0]
    assert adv["adv_eps"] == [0.005, 0.01, 0.02] and adv["adv_fraction"] == 0.5


def test_a_run_without_a_held_out_measurement_is_told_the_command_with_its_id():
    from types import SimpleNamespace

    from detectlab.ui.detect_tab import _heldout_md

    run = SimpleNamespace(heldout=None, short_name="run 20261127-131024-1bc492 mine (resnet18, finished, acc 0.950)")
    assert "`detectlab heldout eval 20261127-131024-1bc492 --no-manifest`" in _heldout_md(run, "resize")


def test_an_uncalibrated_run_is_told_the_calibrate_command_with_its_id():
    from types import SimpleNamespace

    from detectlab.ui.detect_tab import _verdict_md

    a = SimpleNamespace(maps=[], p_fake=0.7, decision="fake", threshold=0.5, seconds=0.01, assessment=None)
    run = SimpleNamespace(weights="", kind="cnn", heldout=None,
                          short_name="run 20261127-131024-1bc492 mine (resnet18, finished, acc 0.950)")
    text = _verdict_md(a, run, run.short_name, "x.png")
    assert "`detectlab calibrate 20261127-131024-1bc492`" in text
