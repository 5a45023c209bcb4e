"""Detector checkpoints: safetensors weights with their metadata; loading never executes code.

The metadata (architecture, input size, normalization via the architecture, class meaning,
training config, data set fingerprint, metrics, library versions) is stored inside the
safetensors header under ``detectlab`` and mirrored in a ``.json`` sidecar for reading.
Frozen-backbone detectors store only their trainable head plus the name of the backbone
weights they were trained on; loading rebuilds the backbone from those weights and refuses
if they are not available (a head on other features would give meaningless scores).
Torch pickle files are accepted only when ``torch.load(weights_only=True)`` can read them.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

from detectlab.errors import CheckpointError
from detectlab.models.base import Detector
from detectlab.models.frozen import FrozenBackboneDetector
from detectlab.models.registry import create_detector
from detectlab.models.weights import load_state_dict, load_torch_weights_only

FORMAT = "detectlab-detector/1"


def _versions() -> dict:
    import timm

    from detectlab import __version__

    return {"detectlab": __version__, "torch": torch.__version__, "timm": timm.__version__, "python": platform.python_version()}


def save_checkpoint(detector: Detector, path: str | Path, meta: dict | None = None) -> Path:
    """Write ``detector`` to ``path`` (.safetensors) with its spec and ``meta``; returns the path."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path.name}: checkpoints are written as .safetensors")
    state = detector.state_dict()
    if isinstance(detector, FrozenBackboneDetector):
        state = {k: v for k, v in state.items() if not k.startswith("backbones.")}
    header = {"format": FORMAT, "detector": detector.spec(), "versions": _versions(), **(meta or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(tmp),
              metadata={"detectlab": json.dumps(header)})
    tmp.replace(path)
    path.with_suffix(".json").write_text(json.dumps(header, indent=1))
    return path


def read_metadata(path: str | Path) -> dict:
    """The metadata of a checkpoint, without loading its weights."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint does not exist")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                raw = (f.metadata() or {}).get("detectlab")
        except Exception as exc:  # noqa: BLE001
            raise CheckpointError(f"{path.name}: not a valid safetensors file ({exc})") from exc
        if raw is None:
            raise CheckpointError(f"{path.name}: has no DetectLab metadata (architecture, input size, classes)")
        return json.loads(raw)
    obj = _load_pickle_safely(path)
    return json.loads(obj["meta"])


def _load_pickle_safely(path: Path) -> dict:
    obj = load_torch_weights_only(path)
    if not (isinstance(obj, dict) and isinstance(obj.get("meta"), str) and isinstance(obj.get("state_dict"), dict)):
        raise CheckpointError(f"{path.name}: a torch file must hold {{'state_dict': tensors, 'meta': JSON}}; "
                              "use a .safetensors checkpoint written by DetectLab")
    return obj


def load_checkpoint(path: str | Path) -> tuple[Detector, dict]:
    """Rebuild the detector of a checkpoint; returns (detector in eval mode, metadata).

    A shipped checkpoint is checked against its SHA-256 pin in the manifest first."""
    from detectlab.models.manifest import verify_pin

    path = Path(path)
    verify_pin(path)
    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path.name}: unknown checkpoint format {meta.get('format')!r}")
    spec = meta["detector"]
    state = load_state_dict(path) if path.suffix == ".safetensors" else _load_pickle_safely(path)["state_dict"]
    frozen = spec["kind"] in ("frozen", "ensemble")  # spectrum detectors carry all their weights
    detector = create_detector(spec["arch"], True if frozen else False, spec["preprocess"]["input_size"])
    if frozen and detector.weights_info.source != spec["weights"]["source"]:
        raise CheckpointError(
            f"{path.name}: its head was trained on backbone weights '{spec['weights']['source']}', "
            f"but here the backbone has '{detector.weights_info.source}'. "
            + " ".join(detector.weights_info.messages))
    missing, unexpected = detector.load_state_dict(state, strict=False)
    if frozen:
        missing = [k for k in missing if not k.startswith("backbones.")]
    if missing or unexpected:
        raise CheckpointError(f"{path.name}: weights do not match {spec['arch']} "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    if not frozen:
        detector.weights_info.source = f"trained checkpoint {path.name} (started from {spec['weights']['source']})"
        detector.weights_info.loaded = True
    detector.eval()
    return detector, meta
