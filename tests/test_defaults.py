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
    assert defaults.shipped_table() == [["cnn-resnet18", "cnn-resnet18", 0.9123, 0.9123, 0.9123, ""]]


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
        if key in fields:
            assert from_preset[key] == value, key


def test_shipped_aug_and_adv_settings_are_the_papers():
    from detectlab.train.defaults import DEFAULTS

    aug = DEFAULTS["cnn-resnet18-aug"][0]["augment"]
    assert (aug.blur_p, aug.jpeg_p, aug.downsize_p, aug.patch_p) == (0.5, 0.5, 0.5, 0.0)
    assert aug.blur_sigma == (0.0, 3.0) and aug.jpeg_quality == (30, 100) and aug.downsize_scale == (0.5, 1.0)
    adv = DEFAULTS["cnn-resnet18-adv"][0]
    assert adv["adv_eps"] == [0.005, 0.01, 0.02] and adv["adv_fraction"] == 0.5
