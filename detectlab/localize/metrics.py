"""Localization metrics: pixel precision/recall/IoU/dice, area quartiles, heatmap↔mask IoU.

[Petrželková 2024] §4.5: pixel-wise precision and recall, the U-Net's dice score, and mAP50 by
manipulated-area quartile (Table 4.8: Q1 0–0.08, Q2 0.08–0.16, Q3 0.16–0.25, Q4 0.25–0.36
of the image area). mAP50 / mAP50-95 themselves are ultralytics' (``localize.yolo``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

__all__ = [
    "QUARTILES",
    "QUARTILE_EDGES",
    "PixelCounts",
    "area_quartile",
    "heatmap_mask_iou",
    "quartile_label",
    "pixel_counts",
    "tp_fp_fn_image",
]

# [Petrželková 2024] Table 4.8; areas above 0.36 (none in the paper's or the demo's data) count in Q4.
QUARTILE_EDGES = (0.0, 0.08, 0.16, 0.25, 0.36)
QUARTILES = ("Q1", "Q2", "Q3", "Q4")


def area_quartile(area: float) -> str | None:
    """The Table 4.8 bin of a manipulated-area fraction: (0, .08] Q1, (.08, .16] Q2, (.16, .25] Q3, above Q4.

    Upper bounds are inclusive, as the demo's mask generator (``detectlab.demo.inpaint``)
    bins them. None for an empty mask (area 0): an unmanipulated image has no region.
    """
    if not area > 0:
        return None
    for name, upper in zip(QUARTILES, QUARTILE_EDGES[1:4]):
        if area <= upper:
            return name
    return QUARTILES[-1]


def quartile_label(quartile: str) -> str:
    """The area range of a Table 4.8 quartile as tables print it: ``Q1`` -> ``"0.00-0.08"``."""
    k = QUARTILES.index(quartile)
    return f"{QUARTILE_EDGES[k]:.2f}-{QUARTILE_EDGES[k + 1]:.2f}"


def _np_bool(mask) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    return np.asarray(mask).astype(bool)


@dataclass
class PixelCounts:
    """Pixel TP/FP/FN/TN, summable over images (micro average) and their ratios.

    Empty denominators give 1.0 where nothing was to be found and nothing was claimed
    (an empty prediction on an empty mask is perfect), else 0.0.
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: "PixelCounts") -> "PixelCounts":
        return PixelCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    @staticmethod
    def _ratio(num: int, den: int) -> float:
        return num / den if den else 1.0

    @property
    def precision(self) -> float:
        return self._ratio(self.tp, self.tp + self.fp) if self.tp + self.fp else float(self.fn == 0)

    @property
    def recall(self) -> float:
        return self._ratio(self.tp, self.tp + self.fn) if self.tp + self.fn else float(self.fp == 0)

    @property
    def iou(self) -> float:
        den = self.tp + self.fp + self.fn
        return self.tp / den if den else 1.0

    @property
    def dice(self) -> float:
        """Dice = 2TP / (2TP + FP + FN) (the U-Net score of [Petrželková 2024] §4.5)."""
        den = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / den if den else 1.0

    def as_dict(self) -> dict:
        return {**asdict(self), "precision": self.precision, "recall": self.recall, "iou": self.iou,
                "dice": self.dice}


def pixel_counts(pred, truth) -> PixelCounts:
    """TP/FP/FN/TN of a predicted bool mask against the ground truth (same shape)."""
    p, t = _np_bool(pred), _np_bool(truth)
    if p.shape != t.shape:
        raise ValueError(f"prediction {p.shape} and ground truth {t.shape} differ in shape")
    tp = int((p & t).sum())
    fp = int((p & ~t).sum())
    fn = int((~p & t).sum())
    return PixelCounts(tp, fp, fn, int(p.size - tp - fp - fn))


# [Petrželková 2024] Fig. 4.15: yellow TP, red FP, green FN
TP_COLOUR, FP_COLOUR, FN_COLOUR = (255, 215, 0), (230, 30, 30), (30, 200, 60)


def tp_fp_fn_image(image: torch.Tensor, pred, truth, opacity: float = 0.6) -> np.ndarray:
    """``[H, W, 3]`` uint8: the image with TP yellow, FP red, FN green pixels ([Petrželková 2024] Fig. 4.15)."""
    p, t = _np_bool(pred), _np_bool(truth)
    base = (image.detach().permute(1, 2, 0).clamp(0, 1).cpu().numpy() * 255).astype(np.float64)
    out = base.copy()
    for region, colour in (((p & t), TP_COLOUR), ((p & ~t), FP_COLOUR), ((~p & t), FN_COLOUR)):
        out[region] = (1 - opacity) * base[region] + opacity * np.array(colour, dtype=np.float64)
    return (out + 0.5).astype(np.uint8)


def heatmap_mask_iou(heatmap, truth, threshold: float = 0.5) -> float:
    """IoU between a detector's heatmap thresholded at ``threshold`` (of its [0, 1] range) and a mask.

    Does the detector look where the manipulation is? (Not in the papers; DetectLab's own
    measure.) A heatmap of another size is resized (bilinear) to the mask's first.
    """
    h = heatmap.detach().float().cpu() if isinstance(heatmap, torch.Tensor) else torch.as_tensor(heatmap).float()
    t = _np_bool(truth)
    if tuple(h.shape) != t.shape:
        h = torch.nn.functional.interpolate(h[None, None], size=t.shape, mode="bilinear", align_corners=False)[0, 0]
    return pixel_counts(h.numpy() >= threshold, t).iou
