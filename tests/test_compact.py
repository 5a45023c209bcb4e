"""Half-precision checkpoint storage: half the bytes, same detector within a stated tolerance."""

from __future__ import annotations

import pytest
import torch

from detectlab.errors import CheckpointError
from detectlab.models import create_detector
from detectlab.models.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from detectlab.models.compact import compact_checkpoint


def test_compact_halves_the_file_and_keeps_scores_within_1e_3(tmp_path):
    torch.manual_seed(0)
    det = create_detector("resnet18", False, 32).eval()
    path = save_checkpoint(det, tmp_path / "d.safetensors", {"threshold": 0.4})
    probe = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    r = compact_checkpoint(path, probe)
    assert r["bytes_after"] < 0.55 * r["bytes_before"]
    assert r["max_abs_dp"] is not None and r["max_abs_dp"] < 1e-3
    again, meta = load_checkpoint(path)
    assert meta["stored_dtype"] == "float16" and meta["threshold"] == 0.4
    assert read_metadata(path)["float16_max_abs_dp"] == r["max_abs_dp"]
    assert all(p.dtype == torch.float32 for p in again.parameters())
    with torch.no_grad():
        assert torch.allclose(torch.sigmoid(again(probe)), torch.sigmoid(det(probe)), atol=1e-3)
    assert compact_checkpoint(path)["already"] is True   # idempotent


def test_compacting_a_pinned_shipped_checkpoint_renews_its_pin(tmp_path, monkeypatch):
    """The manifest pins each shipped file's SHA-256 (a replaced file is refused); compacting one on purpose renews the
    pin, so it still loads, and its float16 error is measured and stored."""
    import json

    from detectlab import config
    from detectlab.models.manifest import file_sha256, read_manifest, update_manifest

    monkeypatch.setattr(config, "CHECKPOINT_DIR", tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"checkpoints": {}}))
    torch.manual_seed(0)
    path = save_checkpoint(create_detector("resnet18", False, 32).eval(), tmp_path / "d.safetensors", {})
    update_manifest("d", {"file": "d.safetensors"})
    before = read_manifest()["checkpoints"]["d"]["sha256"]
    r = compact_checkpoint(path, torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1)))
    pinned = read_manifest()["checkpoints"]["d"]["sha256"]
    assert pinned != before and pinned == file_sha256(path) and r["max_abs_dp"] is not None
    load_checkpoint(path)  # the renewed pin matches
    path.write_bytes(path.read_bytes()[:-1] + b" ")  # any other change is still refused
    with pytest.raises(CheckpointError, match="SHA-256 does not match"):
        load_checkpoint(path)
