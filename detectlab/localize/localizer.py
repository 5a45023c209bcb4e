"""One interface over every localizer: ``load_localizer(path)`` -> ``Localizer.predict(image)``.

Each kind in the registry (``detectlab.localize.registry``) loads its own file and answers
``predict`` with ``Region`` objects whose masks have the image's size: a YOLOv8-seg ``.pt``
(instance segmentation, one confidence per region) and the U-Net ``.safetensors`` (a
probability map; its regions are the connected components of the map above 0.5, each with its
mean probability as confidence).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from detectlab import config
from detectlab.data import resize_center_crop
from detectlab.errors import CheckpointError
from detectlab.localize.registry import LocalizerKind, Region, kind_for_file, localizer_kind, localizer_kinds

__all__ = ["Localizer", "load_localizer", "trusted_dirs"]


def trusted_dirs() -> list[Path]:
    """Where DetectLab writes its own localizers: .pt files there load without an opt-in."""
    return [config.CHECKPOINT_DIR.resolve(), (config.home() / "localizers").resolve()]


def _is_trusted(path: Path) -> bool:
    p = path.resolve()
    return any(p.is_relative_to(d) for d in trusted_dirs())


@dataclass
class Localizer:
    """A loaded localizer. ``kind`` is a registered kind's name ("yolo", "unet"); ``imgsz`` the size it works at."""

    name: str
    kind: str
    model: object
    imgsz: int
    meta: dict = field(default_factory=dict)

    @property
    def entry(self) -> LocalizerKind:
        """The registered kind: how this localizer predicts, trains, saves and validates."""
        return localizer_kind(self.kind)

    def predict(self, image: torch.Tensor, conf: float = 0.25) -> list[Region]:
        """Regions of one image ``[3, H, W]`` in [0, 1] with confidence ≥ ``conf``, masks at the image's size."""
        return self.entry.predict(self.model, image, conf, self.imgsz)


def load_localizer(path: str | Path, *, allow_pickle: bool = False, uploaded: bool = False) -> Localizer:
    """Load a localizer file of any registered kind (a YOLO ``.pt``, a U-Net ``.safetensors``).

    A file that is a pickle (a ``.pt``: ultralytics unpickles it, which can run code the file
    carries) is refused unless ``allow_pickle``, when it lies outside DetectLab's own folders
    (``trusted_dirs``) or was ``uploaded`` by a user (wherever the upload folder is).

    Raises:
        CheckpointError: missing, wrong type, corrupt, not a segmentation model, or a pickle
            without the opt-in.
    """
    from detectlab.models.manifest import verify_pin

    path = Path(path)
    kind = kind_for_file(path)
    if uploaded and kind is not None and kind.pickled and not allow_pickle:
        raise CheckpointError(f"{path.name}: tick 'I trust this .pt file' to load an uploaded .pt — "
                              "ultralytics unpickles it, and a pickle can run code as the server's user")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such localizer file")
    verify_pin(path)  # a shipped file must be the one measured: checked before anything is unpickled
    if kind is None:
        raise CheckpointError(f"{path.name}: a localizer is a YOLO .pt or a DetectLab U-Net .safetensors file")
    if kind.pickled and not allow_pickle and not _is_trusted(path):
        raise CheckpointError(f"{path.name}: a .pt file is a pickle and loading it can run code it carries; "
                              "tick 'I trust this .pt file' (or pass allow_pickle=True / --trust-pt) to load it")
    model, imgsz, meta = kind.load(path)
    return Localizer(path.stem, kind.name, model, imgsz, meta)


def fit_image(image: torch.Tensor, max_side: int = 1024) -> torch.Tensor:
    """Shrink an image whose longer side exceeds ``max_side`` (bounded memory for uploads)."""
    h, w = image.shape[-2:]
    if max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    return resize_center_crop(image, (max(1, round(h * scale)), max(1, round(w * scale))))


def shipped_localizers() -> dict[str, Path]:
    """The default localizers recorded in the manifest (section ``localizers``) whose file exists."""
    from detectlab.models.manifest import read_manifest

    out = {}
    entries = read_manifest().get("localizers", {})
    # in the registry's order (YOLO first: the default pick of the app and the API segments instances)
    order = {kind: k for k, kind in enumerate(localizer_kinds())}
    for name, entry in sorted(entries.items(), key=lambda item: (order.get(item[1].get("kind"), len(order)),
                                                                 item[0])):
        path = config.CHECKPOINT_DIR / entry.get("file", "")
        if path.is_file():
            out[name] = path
    return out


def localizer_choices() -> dict[str, Path]:
    """Screen label -> file: the shipped localizers, then those trained into DetectLab's home."""
    out = {f"shipped: {name}": path for name, path in shipped_localizers().items()}
    folder = config.home() / "localizers"
    for path in sorted(folder.glob("*")) if folder.is_dir() else []:
        if kind_for_file(path) is not None and not path.name.startswith("."):
            out[f"trained: {path.stem}"] = path
    return out
