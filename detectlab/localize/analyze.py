"""One image in, where it was manipulated out: regions, overlays, TP/FP/FN view, heatmap↔mask IoU.

What the Localize tab, the ``/localize`` API and ``detectlab localize predict`` show. The
TP/FP/FN colouring is [Petrželková 2024] Fig. 4.15's (yellow TP, red FP, green FN); the comparison
with a detector's Grad-CAM is DetectLab's own (no seed reports it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from detectlab.data import load_tensor, resize_center_crop
from detectlab.localize.localizer import Localizer, fit_image
from detectlab.localize.masks import check_mask, read_mask
from detectlab.localize.metrics import PixelCounts, heatmap_mask_iou, pixel_counts, tp_fp_fn_image
from detectlab.localize.registry import Region

__all__ = ["Localization", "localize_image", "overlay_regions", "write_png"]

# distinct, colour-blind-friendly region colours (Okabe–Ito)
PALETTE = [(230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
           (204, 121, 167)]
DISPLAY_SIDE = 384  # small demo images are enlarged (nearest) so labels are readable
FIT_SIDE = 1024     # longer side an image is localized at at most (``fit_image``'s default)


@dataclass
class Localization:
    """The result for one image (all images ``[3, H, W]`` / masks ``[H, W]`` at the image's size)."""

    image: torch.Tensor
    regions: list[Region]                       # every region the model returned (conf ≥ its floor)
    conf: float                                 # the confidence threshold shown
    truth: np.ndarray | None = None
    heatmap: torch.Tensor | None = None         # detector's Grad-CAM at the image's size, [0, 1]
    p_fake: float | None = None
    heatmap_threshold: float = 0.5
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def shown(self, conf: float | None = None) -> list[Region]:
        c = self.conf if conf is None else conf
        return [r for r in self.regions if r.confidence >= c]

    def predicted_mask(self, conf: float | None = None) -> np.ndarray:
        out = np.zeros(tuple(self.image.shape[-2:]), bool)
        for r in self.shown(conf):
            out |= r.mask
        return out

    def predicted_area(self, conf: float | None = None) -> float:
        """The predicted manipulated area as a fraction of the image."""
        return float(self.predicted_mask(conf).mean())

    def true_area(self) -> float | None:
        """The ground truth's manipulated area as a fraction of the image (None without one)."""
        return None if self.truth is None else float(self.truth.mean())

    def pixel(self, conf: float | None = None) -> PixelCounts | None:
        """Pixel TP/FP/FN of the predicted mask against the ground truth (None without one)."""
        return None if self.truth is None else pixel_counts(self.predicted_mask(conf), self.truth)

    def heatmap_iou(self) -> float | None:
        if self.truth is None or self.heatmap is None:
            return None
        return heatmap_mask_iou(self.heatmap, self.truth, self.heatmap_threshold)

    def overlay(self, conf: float | None = None) -> Image.Image:
        return overlay_regions(self.image, self.shown(conf))

    def tp_fp_fn(self, conf: float | None = None) -> Image.Image | None:
        if self.truth is None:
            return None
        return _enlarge(Image.fromarray(tp_fp_fn_image(self.image, self.predicted_mask(conf), self.truth)))

    def heatmap_overlay(self, opacity: float = 0.5) -> Image.Image | None:
        if self.heatmap is None:
            return None
        from detectlab.explain import overlay

        img = overlay(self.image, self.heatmap, opacity)
        if self.truth is not None:  # the true region's outline, so the two can be compared by eye
            img = _outline(img, self.truth)
        return _enlarge(img)

    def predicted_mask_image(self, conf: float | None = None) -> Image.Image:
        return Image.fromarray(self.predicted_mask(conf).astype(np.uint8) * 255, "L")

    def report(self, detector: str = "") -> dict:
        """The numbers of the result (JSON-ready): each shown region's confidence and area fraction, the
        predicted area, pixel metrics against the ground truth (with one), and the detector's P(fake) and
        heatmap↔mask IoU (with one; ``detector`` names it)."""
        out = {"regions": [{"confidence": r.confidence, "area": float(r.mask.mean())} for r in self.shown()],
               "predicted_area": self.predicted_area()}
        px = self.pixel()
        if px is not None:
            out["pixel"] = px.as_dict()
        if self.p_fake is not None:
            out["detector"] = {"name": detector, "p_fake": self.p_fake, "heatmap_iou": self.heatmap_iou()}
        return out


def write_png(image: Image.Image, path: str | Path) -> Path:
    """Save a view as PNG with fast compression: the encode otherwise costs a third of a ``/localize``
    request (bench/bench_localize.py)."""
    image.save(path, compress_level=1)
    return Path(path)


def _scale(h: int, w: int) -> int:
    return max(1, DISPLAY_SIDE // max(h, w))


def _enlarge(img: Image.Image) -> Image.Image:
    k = _scale(img.height, img.width)
    return img if k == 1 else img.resize((img.width * k, img.height * k), Image.Resampling.NEAREST)


def _outline(img: Image.Image, mask: np.ndarray) -> Image.Image:
    m = mask.astype(bool)
    edge = m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1))
    arr = np.array(img)
    arr[edge] = (255, 255, 255)
    return Image.fromarray(arr)


def overlay_regions(image: torch.Tensor, regions: list[Region], opacity: float = 0.45) -> Image.Image:
    """The image with each region filled in its own colour and labelled with its confidence."""
    base = (image.detach().permute(1, 2, 0).clamp(0, 1).cpu().numpy() * 255).astype(np.float64)
    for k, r in enumerate(regions):
        colour = np.array(PALETTE[k % len(PALETTE)], dtype=np.float64)
        base[r.mask] = (1 - opacity) * base[r.mask] + opacity * colour
    img = _enlarge(Image.fromarray((base + 0.5).astype(np.uint8)))
    k_scale = _scale(*image.shape[-2:])
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=max(11, img.width // 24))  # Pillow's bundled font: no file lookup
    for k, r in enumerate(regions):
        ys, xs = np.nonzero(r.mask)
        if not len(xs):
            continue
        x, y = int(xs.min()) * k_scale, int(ys.min()) * k_scale
        text = f"{r.confidence:.2f}"
        box = draw.textbbox((x, y), text, font=font)
        draw.rectangle((box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1), fill=PALETTE[k % len(PALETTE)])
        draw.text((x, y), text, fill=(0, 0, 0), font=font)
    return img


def localize_image(
    localizer: Localizer,
    source,
    *,
    mask=None,
    conf: float = 0.25,
    detector=None,
    heatmap_threshold: float = 0.5,
    floor: float = 0.05,
    name: str | None = None,
) -> Localization:
    """Localize the manipulated regions of one image (decoded by ``detectlab.data``).

    Regions down to ``floor`` confidence are kept so a confidence slider can re-draw
    without re-running the model. With ``mask`` (a path/bytes, or an array), the
    ground truth is checked (binary, the image's size, not empty) and TP/FP/FN become
    available; with ``detector`` (a ``Detector``), its Grad-CAM heatmap on the same image
    and P(fake).

    Raises:
        ImageDecodeError: the image or mask cannot be decoded. MaskError: the mask is not
            binary, the wrong size or empty.
    """
    start = time.perf_counter()
    # decoded straight to the localizer's working size (a 50-MP upload never becomes a full-size float tensor)
    image = fit_image(load_tensor(source, max_side=FIT_SIDE, name=name), FIT_SIDE)
    size = tuple(image.shape[-2:])
    truth = None
    if mask is not None:
        if isinstance(mask, (np.ndarray, torch.Tensor)):
            truth = check_mask(mask, name="ground-truth mask", size=size)
        else:
            truth = read_mask(mask, size=size)
    regions = localizer.predict(image, conf=min(conf, floor))
    result = Localization(image, regions, conf, truth, heatmap_threshold=heatmap_threshold)
    if detector is not None:
        result.heatmap, result.p_fake = _detector_heatmap(detector, image)
    result.seconds = time.perf_counter() - start
    return result


def _detector_heatmap(detector, image: torch.Tensor) -> tuple[torch.Tensor | None, float]:
    """Grad-CAM of ``detector`` on ``image`` brought back to the image's size; P(fake).

    The detector sees its own resize + center crop; the map is placed back on that crop
    (outside it: 0), so it lines up with the image and its mask.
    """
    from detectlab.explain import heatmaps

    size = detector.preprocess.input_size
    x = resize_center_crop(image, size)
    if not detector.heatmap_targets():
        with torch.no_grad():
            return None, float(torch.sigmoid(detector.eval()(x[None]))[0])
    maps, logits = heatmaps(detector, x[None])
    h, w = image.shape[-2:]
    scale = max(size / h, size / w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    top, left = round((new_h - size) / 2), round((new_w - size) / 2)
    canvas = torch.zeros(new_h, new_w)
    canvas[top:top + size, left:left + size] = maps[0][0]
    full = torch.nn.functional.interpolate(canvas[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    return full.clamp(0, 1), float(torch.sigmoid(logits[0]))
