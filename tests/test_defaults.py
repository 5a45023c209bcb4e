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
