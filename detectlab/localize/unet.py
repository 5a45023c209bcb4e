"""A small U-Net baseline for manipulated-region segmentation ([Petrželková 2024] §4.5).

[Petrželková 2024] first localizes the inpainted areas with a U-Net (Ronneberger et al. 2015) trained
as semantic segmentation on the binary masks (test dice 58 %) before YOLOv8-seg. The loss
here is BCE + soft dice, L = BCE(σ(z), m) + 1 − 2Σσ(z)m / (Σσ(z) + Σm), the usual pairing
for a foreground that covers a small part of the image. Saved as safetensors with its
metadata: loading never unpickles.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from detectlab.data import MaskedImageDataset
from detectlab.errors import CheckpointError
from detectlab.localize.masks import mask_to_polygons
from detectlab.localize.registry import LocalizerKind, Region, register_localizer
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress

__all__ = ["UNET", "UNet", "dice_bce_loss", "load_unet", "predict_unet", "save_unet", "train_unet", "unet_probability"]

FORMAT = "detectlab-unet/1"


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Encoder–decoder with skip connections; ``[B, 3, H, W]`` in [0, 1] -> one logit map ``[B, 1, H, W]``.

    ``width`` channels at full resolution, doubled at each of ``depth`` poolings (H and W
    must be divisible by 2**depth; inputs are resized to the training size anyway).
    """

    def __init__(self, width: int = 16, depth: int = 3) -> None:
        super().__init__()
        self.width, self.depth = int(width), int(depth)
        chans = [self.width * 2 ** i for i in range(self.depth + 1)]
        self.down = nn.ModuleList([_block(3, chans[0])] + [_block(chans[i], chans[i + 1]) for i in range(self.depth)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2)
                                 for i in reversed(range(self.depth))])
        self.merge = nn.ModuleList([_block(2 * chans[i], chans[i]) for i in reversed(range(self.depth))])
        self.head = nn.Conv2d(chans[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - 0.5) / 0.25
        skips = []
        for k, block in enumerate(self.down):
            x = block(x if k == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([up(x), skips.pop()], 1))
        return self.head(x)

    def spec(self) -> dict:
        return {"arch": "unet", "width": self.width, "depth": self.depth}


def dice_bce_loss(logits: torch.Tensor, masks: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """BCE + (1 − soft dice) per image, averaged (see module docstring)."""
    bce = F.binary_cross_entropy_with_logits(logits, masks)
    p = torch.sigmoid(logits).flatten(1)
    m = masks.flatten(1)
    dice = (2 * (p * m).sum(1) + eps) / (p.sum(1) + m.sum(1) + eps)
    return bce + (1 - dice).mean()


def _hflip(image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if torch.rand(()) < 0.5:
        return image.flip(-1), mask.flip(-1)
    return image, mask


def train_unet(
    train_pairs,
    val_pairs,
    *,
    imgsz: int = 128,
    width: int = 16,
    depth: int = 3,
    epochs: int = 15,
    batch: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    progress: Progress = null_progress,
    cancel: CancelToken = NEVER_CANCEL,
    on_epoch: Callable[[dict], None] | None = None,
) -> dict:
    """Train the U-Net with Adam on (image, mask) pairs; keep the best validation dice.

    Returns ``{"model": UNet (best weights, eval mode), "history": [...], "seconds": float,
    "best_epoch": int}``. ``cancel`` is checked every batch; ``on_epoch`` gets each epoch's row.
    """
    from detectlab.localize.metrics import PixelCounts, pixel_counts

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = UNet(width, depth)
    train_loader = torch.utils.data.DataLoader(MaskedImageDataset(train_pairs, imgsz, transform=_hflip),
                                               batch_size=batch, shuffle=True, generator=gen)
    val_loader = torch.utils.data.DataLoader(MaskedImageDataset(val_pairs, imgsz), batch_size=32)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history, best, best_state, best_epoch = [], -1.0, None, 0
    start = time.perf_counter()
    steps = epochs * len(train_loader)
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for k, (x, m, _) in enumerate(train_loader):
            cancel.check()
            loss = dice_bce_loss(model(x), m)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(x)
            progress(epoch * len(train_loader) + k + 1, steps, f"Training U-Net (epoch {epoch + 1}/{epochs})")
        model.eval()
        counts = PixelCounts()
        with torch.no_grad():
            for x, m, _ in val_loader:
                cancel.check()
                counts += pixel_counts(model(x) > 0, m > 0.5)
        history.append({"epoch": epoch + 1, "train_loss": total / len(train_loader.dataset), "val_dice": counts.dice,
                        "val_iou": counts.iou})
        if on_epoch is not None:
            on_epoch(history[-1])
        if counts.dice > best:
            best, best_epoch = counts.dice, epoch + 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
    return {"model": model.eval(), "history": history, "seconds": time.perf_counter() - start,
            "best_epoch": best_epoch}


def save_unet(model: UNet, path: str | Path, meta: dict | None = None) -> Path:
    """Write the U-Net as safetensors with its spec and ``meta`` in the header, plus a .json copy."""
    from safetensors.torch import save_file

    path = Path(path)
    header = {"format": FORMAT, "localizer": model.spec(), **(meta or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp),
              metadata={"detectlab": json.dumps(header)})
    tmp.replace(path)
    path.with_suffix(".json").write_text(json.dumps(header, indent=1))
    return path


def load_unet(path: str | Path) -> tuple[UNet, dict]:
    """Load a U-Net safetensors file (no code runs); raises ``CheckpointError`` naming the file."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            header = json.loads((f.metadata() or {}).get("detectlab", "{}"))
        state = load_file(str(path))
    except Exception as exc:
        raise CheckpointError(f"{path.name}: not a readable safetensors file ({type(exc).__name__})") from exc
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path.name}: not a DetectLab U-Net localizer (format {header.get('format')!r})")
    spec = header["localizer"]
    model = UNet(spec["width"], spec["depth"])
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path.name}: weights do not match the U-Net spec {spec}") from exc
    return model.eval(), header


def unet_probability(model: UNet, image: torch.Tensor, imgsz: int) -> torch.Tensor:
    """P(manipulated) per pixel ``[H, W]`` at the image's size: the image resized to ``imgsz``, the map back."""
    h, w = image.shape[-2:]
    x = F.interpolate(image[None], size=(imgsz, imgsz), mode="bilinear", antialias=True,
                      align_corners=False).clamp(0, 1)
    with torch.no_grad():
        p = torch.sigmoid(model(x))
    return F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False)[0, 0]


def predict_unet(model: UNet, image: torch.Tensor, conf: float = 0.25, imgsz: int = 128) -> list[Region]:
    """Regions of one image ``[3, H, W]``: the connected components of the probability map above 0.5, each
    with its mean probability as confidence (kept when ≥ ``conf``), most confident first."""
    prob = unet_probability(model, image, imgsz).numpy()
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


# --------------------------------------------------------------------------- the registered kind


def _load_checkpoint(path: Path) -> tuple[UNet, int, dict]:
    model, header = load_unet(path)
    return model, int(header.get("imgsz", 128)), header


def _train(cfg, yds, work: Path, *, progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
           on_epoch: Callable[[dict], None] | None = None) -> dict:
    """``train_unet`` on the data layer's split of ``cfg.data`` with ``cfg.threads`` torch threads (0: torch's)."""
    from detectlab.localize.dataset import masked_splits

    _, parts = masked_splits(cfg.data, seed=cfg.seed)
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    try:
        trained = train_unet(parts["train"], parts["val"], imgsz=cfg.imgsz, width=cfg.width, epochs=cfg.epochs,
                             batch=cfg.batch, lr=cfg.lr, seed=cfg.seed, progress=progress, cancel=cancel,
                             on_epoch=on_epoch)
    finally:
        torch.set_num_threads(threads)
    return {**trained, "threads": cfg.threads or torch.get_num_threads()}


UNET = register_localizer(LocalizerKind(
    name="unet",
    description="the U-Net baseline: a probability map, regions its connected components ([Petrželková 2024] §4.5)",
    archs=("unet",),
    suffix=".safetensors",
    load=_load_checkpoint,
    predict=lambda model, image, conf, imgsz: predict_unet(model, image, conf, imgsz),
    train=_train,
    save=lambda trained, meta, path: save_unet(trained["model"], path, meta),
    default_name=lambda cfg: f"unet-w{cfg.width}",
    curves=(("train_loss", "dice + BCE loss", False), ("val_dice", "val pixel dice", True),
            ("val_iou", "val pixel IoU", True)),
))
