"""Heatmap overlays for display."""

from __future__ import annotations

import functools

import numpy as np
import torch
from PIL import Image


def overlay(image: torch.Tensor, heatmap: torch.Tensor, opacity: float = 0.5, cmap: str = "jet") -> Image.Image:
    """Blend a ``[H, W]`` heatmap in [0, 1] over a ``[3, H, W]`` image in [0, 1] (opacity 0 = image only)."""
    from matplotlib import colormaps

    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    img = image.detach().permute(1, 2, 0).clamp(0, 1).numpy()
    heat = colormaps[cmap](heatmap.detach().clamp(0, 1).numpy())[..., :3]
    out = (1 - opacity) * img + opacity * heat
    return Image.fromarray((out * 255 + 0.5).astype(np.uint8))


@functools.lru_cache(maxsize=4)
def colour_bar(width: int = 256, height: int = 24) -> Image.Image:
    """The overlays' colour scale (jet, 0 at the left, 1 at the right) as a small image."""
    ramp = torch.linspace(0, 1, width)[None].expand(height, width)
    return overlay(torch.zeros(3, height, width), ramp, opacity=1.0)


def grid_image(values: np.ndarray, cell: int = 32) -> Image.Image:
    """A ``[rows, cols]`` grid of values in [0, 1] drawn as ``cell``-px blocks in the same colours;
    NaN cells (not measured) are black."""
    cells = np.kron(values, np.ones((cell, cell)))
    pixels = np.asarray(overlay(torch.zeros(3, *cells.shape), torch.from_numpy(np.nan_to_num(cells)).float(),
                                opacity=1.0)).copy()
    pixels[np.isnan(cells)] = 0
    return Image.fromarray(pixels)
