"""One interface over both localizers: ``load_localizer(path)`` -> ``Localizer.predict(image)``.

A YOLOv8-seg ``.pt`` (instance segmentation, one confidence per region) and the U-Net
``.safetensors`` (a probability map; its regions are the connected components of the map
above 0.5, each with its mean probability as confidence) both answer ``predict`` with
``Region`` objects whose masks have the image's size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from detectlab import config
from detectlab.data import resize_center_crop
from detectlab.errors import CheckpointError
from detectlab.localize.masks import mask_to_polygons
from detectlab.localize.yolo import Region, load_yolo, predict_yolo

__all__ = ["Localizer", "load_localizer", "trusted_dirs"]


def trusted_dirs() -> list[Path]:
    """Where DetectLab writes its own localizers: .pt files there load without an opt-in."""
    return [config.CHECKPOINT_DIR.resolve(), (config.home() / "localizers").resolve()]


def _is_trusted(path: Path) -> bool:
    p = path.resolve()
    return any(p.is_relative_to(d) for d in trusted_dirs())


@dataclass
class Localizer:
    """A loaded localizer. ``kind`` is "yolo" or "unet"; ``imgsz`` the size it works at."""

    name: str
    kind: str
    model: object
    imgsz: int
    meta: dict = field(default_factory=dict)

    def predict(self, image: torch.Tensor, conf: float = 0.25) -> list[Region]:
        """Regions of one image ``[3, H, W]`` in [0, 1] with confidence ≥ ``conf``, masks at the image's size."""
        if self.kind == "yolo":
            return predict_yolo(self.model, image, conf=conf, imgsz=self.imgsz)
        return self._predict_unet(image, conf)

    def probability(self, image: torch.Tensor) -> torch.Tensor:
        """U-Net only: P(manipulated) per pixel ``[H, W]`` at the image's size."""
        h, w = image.shape[-2:]
        x = torch.nn.functional.interpolate(image[None], size=(self.imgsz, self.imgsz), mode="bilinear",
                                             antialias=True, align_corners=False).clamp(0, 1)
        with torch.no_grad():
            p = torch.sigmoid(self.model(x))
        return torch.nn.functional.interpolate(p, size=(h, w), mode="bilinear", align_corners=False)[0, 0]

    def _predict_unet(self, image: torch.Tensor, conf: float) -> list[Region]:
        prob = self.probability(image).numpy()
        count, labels = cv2.connectedComponents((prob > 0.5).astype(np.uint8), connectivity=8)
        regions = []
        for k in range(1, count):
            part = labels == k
            score = float(prob[part].mean())
            if score >= conf:
                polys = mask_to_polygons(part, normalize=False)
                regions.append(Region(part, score, polys[0] if polys else np.zeros((0, 2))))
        regions.sort(key=lambda r: -r.confidence)
        return regions


def load_localizer(path: str | Path, *, allow_pickle: bool = False) -> Localizer:
    """Load a YOLO ``.pt`` or a U-Net ``.safetensors`` localizer.

    A ``.pt`` outside DetectLab's own folders (``trusted_dirs``) is refused unless
    ``allow_pickle``: ultralytics unpickles it, which can run code the file carries.

    Raises:
        CheckpointError: missing, wrong type, corrupt, not a segmentation model, or an
            untrusted ``.pt`` without the opt-in.
    """
    from detectlab.models.manifest import verify_pin

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such localizer file")
    verify_pin(path)  # a shipped file must be the one measured: checked before anything is unpickled
    if path.suffix == ".safetensors":
        from detectlab.localize.unet import load_unet

        model, header = load_unet(path)
        return Localizer(path.stem, "unet", model, int(header.get("imgsz", 128)), header)
    if path.suffix != ".pt":
        raise CheckpointError(f"{path.name}: a localizer is a YOLO .pt or a DetectLab U-Net .safetensors file")
    if not allow_pickle and not _is_trusted(path):
        raise CheckpointError(f"{path.name}: a .pt file is a pickle and loading it can run code it carries; "
                              "tick 'I trust this .pt file' (or pass allow_pickle=True / --trust-pt) to load it")
    model = load_yolo(path)
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    imgsz = int(meta.get("imgsz") or (getattr(model, "overrides", {}) or {}).get("imgsz") or 128)
    return Localizer(path.stem, "yolo", model, imgsz, meta)


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
    # YOLO first: the default pick of the app and the API is the instance-segmentation localizer
    for name, entry in sorted(entries.items(), key=lambda item: (item[1].get("kind") != "yolo", item[0])):
        path = config.CHECKPOINT_DIR / entry.get("file", "")
        if path.is_file():
            out[name] = path
    return out


def localizer_choices() -> dict[str, Path]:
    """Screen label -> file: the shipped localizers, then those trained into DetectLab's home."""
    out = {f"shipped: {name}": path for name, path in shipped_localizers().items()}
    folder = config.home() / "localizers"
    for path in sorted(folder.glob("*")) if folder.is_dir() else []:
        if path.suffix in (".pt", ".safetensors") and not path.name.startswith("."):
            out[f"trained: {path.stem}"] = path
    return out
