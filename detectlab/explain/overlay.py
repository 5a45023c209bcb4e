"""Heatmap overlays for display."""

from __future__ import annotations

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
