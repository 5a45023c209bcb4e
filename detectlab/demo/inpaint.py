"""Partially manipulated images: generator output blended into a real photo under an ellipse.

[Petrželková 2024] §4.5.1 inpaints randomly placed, rotated and cropped ellipses whose areas cover
0-36 % of the image, and reports accuracy by area quartile: Q1 (0, 0.08), Q2 (0.08, 0.16),
Q3 (0.16, 0.25), Q4 (0.25, 0.36).
"""

from __future__ import annotations

import numpy as np

AREA_QUARTILES = ((0.0, 0.08), (0.08, 0.16), (0.16, 0.25), (0.25, 0.36))


def ellipse_mask(height: int, width: int, rng: np.random.Generator, area_range: tuple[float, float] = (0.01, 0.36)) -> np.ndarray:
    """A random rotated ellipse, possibly cut by the image border, as a bool ``[H, W]`` mask.

    The target area fraction is drawn uniformly from ``area_range`` so the quartiles of seed
    001 are about equally filled; the ellipse is re-drawn until its visible area lies in range.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    lo, hi = area_range
    for _ in range(200):
        target = rng.uniform(lo, hi)
        aspect = rng.uniform(0.4, 1.0)
        # area of the full ellipse = pi * a * b; allow it to exceed the target when cropped
        full = target * height * width * rng.uniform(1.0, 1.3)
        a = np.sqrt(full / (np.pi * aspect))
        b = a * aspect
        cy, cx = rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width
        theta = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = dx * np.cos(theta) + dy * np.sin(theta)
        v = -dx * np.sin(theta) + dy * np.cos(theta)
        mask = (u / a) ** 2 + (v / b) ** 2 <= 1.0
        frac = mask.mean()
        if lo <= frac <= hi and frac > 0:
            return mask
    raise RuntimeError("could not draw an ellipse mask in the requested area range")


def blend(real: np.ndarray, fake: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Paste ``fake`` into ``real`` where ``mask`` is set (hard edge, so the mask is exact)."""
    return np.where(mask[..., None], fake, real)


def area_quartile(fraction: float) -> str:
    """Name of [Petrželková 2024]'s area quartile (Q1..Q4) for a mask covering ``fraction`` of the image."""
    for k, (lo, hi) in enumerate(AREA_QUARTILES, start=1):
        if fraction <= hi:
            return f"Q{k}"
    return "Q4"
