"""Binary masks <-> YOLO segmentation polygons, and the checks a ground-truth mask must pass.

[Petrželková 2024] §4.5: "we converted the binary masks into a list of polygons in YOLO annotations
format by finding the contours of the foreground areas in the binary masks". One instance
per connected region; a hole inside a region is bridged into its outer contour (a YOLO
label holds one polygon per instance, so the hole is cut in by a zero-width seam, as
ultralytics' own ``merge_multi_segment`` does for COCO).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from detectlab.data import load_image
from detectlab.errors import DetectLabError

__all__ = [
    "MaskError",
    "check_mask",
    "mask_area_fraction",
    "mask_to_polygons",
    "polygons_to_mask",
    "read_mask",
    "yolo_label_lines",
]

# Regions smaller than this many pixels are dropped: contour noise, not a manipulation.
MIN_REGION_PIXELS = 4


class MaskError(DetectLabError):
    """A ground-truth mask is the wrong size, not binary, or empty."""


def _as_bool(mask: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.ndim != 2:
        raise MaskError(f"a mask must be one 2-D channel, got shape {mask.shape}")
    return mask.astype(bool)


def read_mask(source, *, name: str | None = None, size: tuple[int, int] | None = None,
              allow_empty: bool = False) -> np.ndarray:
    """Decode a ground-truth mask (through ``detectlab.data``) into bool ``[H, W]``, checked.

    Decoded as RGB like every image; a mask is binary when every pixel is black or white
    up to a small tolerance (JPEG masks ring at the edge, so at most 2 % of pixels may lie
    strictly between 32 and 223). Anything else (a photo, a soft matte) is refused rather
    than silently thresholded.

    Args:
        source: path or bytes of the mask image.
        name: how to call the mask in errors.
        size: the image's (height, width) the mask must match.
        allow_empty: accept a mask with no foreground pixel.

    Raises:
        ImageDecodeError: not decodable. MaskError: not binary, wrong size, empty.
    """
    label = name or (str(source) if isinstance(source, (str, Path)) else "uploaded mask")
    grey = np.asarray(load_image(source, name=label).convert("L"))
    between = (grey > 32) & (grey < 223)
    if between.mean() > 0.02:
        raise MaskError(f"{label}: the mask is not binary ({between.mean():.0%} of its pixels are grey, "
                        "neither black nor white); save it as black (kept) and white (manipulated)")
    mask = grey >= 128
    check_mask(mask, name=label, size=size, allow_empty=allow_empty)
    return mask


def check_mask(mask: np.ndarray | torch.Tensor, *, name: str = "mask", size: tuple[int, int] | None = None,
               allow_empty: bool = False) -> np.ndarray:
    """Refuse a mask of the wrong size or with no foreground; returns it as bool ``[H, W]``."""
    m = _as_bool(mask)
    if size is not None and tuple(m.shape) != tuple(size):
        raise MaskError(f"{name}: the mask is {m.shape[1]}×{m.shape[0]} but the image is "
                        f"{size[1]}×{size[0]} (width×height); they must match")
    if not allow_empty and not m.any():
        raise MaskError(f"{name}: the mask is empty (no white, manipulated pixel)")
    return m


def mask_area_fraction(mask: np.ndarray | torch.Tensor) -> float:
    """Manipulated area as a fraction of the image area ([Petrželková 2024] §4.5.1)."""
    m = _as_bool(mask)
    return float(m.mean())


def mask_to_polygons(mask: np.ndarray | torch.Tensor, *, normalize: bool = True) -> list[np.ndarray]:
    """One polygon ``[K, 2]`` (x, y) per connected foreground region.

    Coordinates follow the pixel corners (a pixel (x, y) spans [x, x+1]) within a quarter
    pixel: contours are traced on a 2× up-sampled mask and halved, so that filling the polygon back covers the region's
    pixels instead of shrinking it by half a pixel on every side (which costs small ellipses
    several IoU points). With ``normalize`` they are divided by (width, height), as YOLO
    labels are. Holes are joined to their outer contour by a seam (see module docstring).
    """
    m = _as_bool(mask)
    h, w = m.shape
    count, labels = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
    polygons = []
    for region in range(1, count):
        part = labels == region
        if part.sum() < MIN_REGION_PIXELS:
            continue
        big = cv2.resize(part.astype(np.uint8), (2 * w, 2 * h), interpolation=cv2.INTER_NEAREST)
        contours, hierarchy = cv2.findContours(big, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            continue
        hierarchy = hierarchy[0]
        outers = [i for i in range(len(contours)) if hierarchy[i][3] < 0]
        outer = max(outers, key=lambda i: cv2.contourArea(contours[i]))
        poly = contours[outer][:, 0, :].astype(np.float64)
        for i in range(len(contours)):
            if hierarchy[i][3] == outer:
                poly = _bridge(poly, contours[i][:, 0, :].astype(np.float64))
        # findContours walks pixel centres of the 2x grid; +0.5 moves them to corners.
        poly = (poly + 0.5) / 2.0
        if normalize:
            poly = poly / np.array([w, h], dtype=np.float64)
        polygons.append(poly)
    return polygons


def _bridge(outer: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Cut ``hole`` into ``outer`` through their closest pair of vertices (a zero-width seam)."""
    d = ((outer[:, None, :] - hole[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(int(np.argmin(d)), d.shape)
    hole_loop = np.concatenate([hole[j:], hole[:j + 1]])
    return np.concatenate([outer[:i + 1], hole_loop, outer[i:]])


def polygons_to_mask(polygons: list[np.ndarray], size: tuple[int, int], *, normalized: bool = True) -> np.ndarray:
    """Rasterize polygons ``[K, 2]`` (x, y) into a bool mask of ``size`` = (height, width).

    The reverse of ``mask_to_polygons`` (and how predicted polygons become a mask of the
    image's size for pixel metrics). Filled with the even-odd rule so seamed holes stay holes.
    """
    h, w = size
    # 8x sub-pixel precision: corner coordinates land between pixel centres.
    shift, scale = 3, 8
    canvas = np.zeros((h, w), np.uint8)
    pts = []
    for poly in polygons:
        p = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if len(p) < 3:
            continue
        if normalized:
            p = p * np.array([w, h])
        # a pixel is inside when its centre is: shift corner coordinates by -0.5
        pts.append(np.round((p - 0.5) * scale).astype(np.int32))
    for p in pts:
        layer = np.zeros((h, w), np.uint8)
        cv2.fillPoly(layer, [p], 1, lineType=cv2.LINE_8, shift=shift)
        canvas |= layer
    return canvas.astype(bool)


def yolo_label_lines(mask: np.ndarray | torch.Tensor, class_id: int = 0) -> list[str]:
    """YOLO-seg label lines ``class x1 y1 x2 y2 ...`` (normalised) for every region of ``mask``."""
    lines = []
    for poly in mask_to_polygons(mask, normalize=True):
        coords = " ".join(f"{v:.6f}" for v in np.clip(poly, 0.0, 1.0).reshape(-1))
        lines.append(f"{class_id} {coords}")
    return lines
