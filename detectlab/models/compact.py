"""Half-precision storage for shipped checkpoints: half the bytes, scores within a stated tolerance.

A ResNet-18 checkpoint is 45 MB in float32; the repository ships several. Weights are stored
as float16 and loaded back into the float32 model (``load_state_dict`` converts), so nothing
else changes. ``compact_checkpoint`` records what it did in the metadata
(``stored_dtype``) and the largest change in P(fake) it measured on the images it was given,
so the loss of precision is a number, not an assumption.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from detectlab.errors import CheckpointError


def compact_checkpoint(path: str | Path, probe: torch.Tensor | None = None) -> dict:
    """Rewrite ``path`` (.safetensors) with float16 weights; return sizes and the measured P(fake) change.

    Args:
        path: a DetectLab checkpoint.
        probe: optional images ``[N, 3, S, S]`` in [0, 1]; the detector is scored on them before
            and after, and the largest absolute P(fake) difference is reported and stored.
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    from detectlab.models.checkpoint import load_checkpoint

    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path.name}: only .safetensors checkpoints can be compacted")
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {})["detectlab"])
        state = {k: f.get_tensor(k) for k in f.keys()}
    if meta.get("stored_dtype") == "float16":
        return {"file": path.name, "bytes_before": path.stat().st_size, "bytes_after": path.stat().st_size,
                "max_abs_dp": meta.get("float16_max_abs_dp"), "already": True}
    before_p = None
    if probe is not None:
        det, _ = load_checkpoint(path)
        with torch.no_grad():
            before_p = torch.sigmoid(det(probe)).double()
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    meta["stored_dtype"] = "float16"
    size_before = path.stat().st_size
    tmp = path.with_name(path.name + ".tmp")
    save_file(half, str(tmp), metadata={"detectlab": json.dumps(meta)})
    tmp.replace(path)
    _repin(path)
    max_dp = None
    if probe is not None:
        det, _ = load_checkpoint(path)
        with torch.no_grad():
            max_dp = float((torch.sigmoid(det(probe)).double() - before_p).abs().max())
        meta["float16_max_abs_dp"] = max_dp
        save_file(half, str(tmp), metadata={"detectlab": json.dumps(meta)})
        tmp.replace(path)
        _repin(path)
    sidecar = path.with_suffix(".json")
    if sidecar.exists():
        sidecar.write_text(json.dumps(meta, indent=1))
    return {"file": path.name, "bytes_before": size_before, "bytes_after": path.stat().st_size, "max_abs_dp": max_dp}


def _repin(path: Path) -> None:
    """A shipped checkpoint compacted on purpose gets its manifest pin (``sha256``) renewed, so it loads again; any
    other change to a pinned file is still refused."""
    from detectlab import config
    from detectlab.models.manifest import read_manifest, update_manifest

    if path.resolve().parent != config.CHECKPOINT_DIR.resolve():
        return
    for name, entry in read_manifest()["checkpoints"].items():
        if entry.get("file") == path.name:
            update_manifest(name, entry)
