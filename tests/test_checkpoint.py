"""Checkpoints carry their metadata and load without executing code."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import torch

from detectlab.errors import CheckpointError
from detectlab.models import create_detector
from detectlab.models.checkpoint import load_checkpoint, read_metadata, save_checkpoint


@pytest.mark.parametrize("arch", ["resnet18", "npr", "frozen:mobilenet_v2"])
def test_round_trip_keeps_outputs_and_metadata(tmp_path, arch):
    torch.manual_seed(0)
    det = create_detector(arch, input_size=64).eval()
    path = save_checkpoint(det, tmp_path / "m.safetensors", {"metrics": {"test": {"accuracy": 0.5}}, "threshold": 0.5})
    loaded, meta = load_checkpoint(path)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(det(x), loaded(x), atol=1e-6)
    assert meta["detector"]["arch"] == arch
    assert meta["detector"]["preprocess"]["input_size"] == 64
    assert meta["metrics"]["test"]["accuracy"] == 0.5
    assert "torch" in meta["versions"]
    assert (tmp_path / "m.json").exists()
    if arch.startswith("frozen"):
        assert path.stat().st_size < 50_000  # head only; the backbone is named, not copied


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    payload = _Payload()
    payload.marker = marker
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as fh:
        pickle.dump({"state_dict": {}, "meta": "{}", "x": payload}, fh)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(evil)
    assert not marker.exists()


@pytest.mark.parametrize("content,match", [
    (b"", "not a valid safetensors"),
    (b"\x10\x00\x00\x00\x00\x00\x00\x00{}", "DetectLab metadata|not a valid"),
    (b"garbage" * 10, "not a valid safetensors"),
])
def test_bad_safetensors_give_clear_errors(tmp_path, content, match):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        read_metadata(p)


def test_safetensors_without_metadata(tmp_path):
    from safetensors.torch import save_file

    p = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(p))
    with pytest.raises(CheckpointError, match="no DetectLab metadata"):
        load_checkpoint(p)


# -- integrity pins -----------------------------------------------------------------------------------
def test_every_shipped_file_is_pinned_and_matches_its_pin():
    from detectlab import config
    from detectlab.models.manifest import file_sha256, read_manifest

    pinned = 0
    for section, entries in read_manifest().items():
        for name, entry in entries.items():
            if isinstance(entry, dict) and entry.get("file") and (config.CHECKPOINT_DIR / entry["file"]).is_file():
                assert entry.get("sha256") == file_sha256(config.CHECKPOINT_DIR / entry["file"]), (section, name)
                pinned += 1
    assert pinned >= 8  # six detectors and two localizers


@pytest.mark.parametrize("name, load", [
    ("spectrum-durrall.safetensors", "detector"), ("unet-small.safetensors", "localizer"),
    ("localizer-yolov8n-seg.pt", "localizer"),
])
def test_a_corrupted_shipped_checkpoint_is_refused_by_name(tmp_path, monkeypatch, name, load):
    """One flipped byte in a shipped file: refused at load, the message names the file (a .pt before unpickling)."""
    import shutil

    from detectlab import config
    from detectlab.errors import CheckpointError
    from detectlab.localize.localizer import load_localizer
    from detectlab.models.checkpoint import load_checkpoint

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    shutil.copy(config.CHECKPOINT_DIR / "manifest.json", folder)
    shutil.copy(config.CHECKPOINT_DIR / name, folder)
    for sidecar in (config.CHECKPOINT_DIR / name).parent.glob(Path(name).stem + ".json"):
        shutil.copy(sidecar, folder)
    monkeypatch.setattr(config, "CHECKPOINT_DIR", folder)
    loader = load_checkpoint if load == "detector" else load_localizer
    loader(folder / name)  # intact: loads
    data = bytearray((folder / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / name).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=rf"{re.escape(name)}: its SHA-256 does not match"):
        loader(folder / name)
