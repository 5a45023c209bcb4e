"""Half-precision checkpoint storage: half the bytes, same detector within a stated tolerance."""

from __future__ import annotations

import torch

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
