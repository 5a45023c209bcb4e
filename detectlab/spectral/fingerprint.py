"""Generator fingerprints as differences of mean log-amplitude spectra.

[Wimmer 2024], eq. (1): FP(R, S) = 1/n sum_i log|F(S_i)| - 1/n sum_i log|F(R_i)|, with F the 2-D
DFT, centred (zero frequency in the middle). Means are accumulated batch by batch, so memory
does not grow with the number of images.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

# the centred log spectrum itself is computed where the spectrum detector needs it (below this layer)
from detectlab.models.spectrum import (  # noqa: F401 - part of this module's API
    full_centred,
    half_log_amplitude,
    log_spectrum,
    radial_bins,
    radial_profile,
)


class RunningMean:
    """Streaming mean of equally shaped arrays (float64, so long sums stay exact enough)."""

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.count = 0

    def update(self, batch: torch.Tensor) -> None:
        s = batch.double().sum(0)
        self.total = s if self.total is None else self.total + s
        self.count += batch.shape[0]

    @property
    def mean(self) -> np.ndarray:
        if self.total is None or self.count == 0:
            raise ValueError("no images were given")
        return (self.total / self.count).numpy()


def mean_log_spectrum(batches: Iterable[torch.Tensor], grayscale: bool = True, limit: int | None = None) -> tuple[np.ndarray, int]:
    """Mean centred log-spectrum of up to ``limit`` images streamed as batches; returns (mean, n).

    Accumulated in float64 on the half plane; memory holds one batch whatever n is.
    """
    acc = RunningMean()
    width = None
    for batch in batches:
        if limit is not None and acc.count >= limit:
            break
        if limit is not None:
            batch = batch[: limit - acc.count]
        width = batch.shape[-1]
        acc.update(half_log_amplitude(batch, grayscale))
    if width is None:
        raise ValueError("no images were given")
    return full_centred(torch.from_numpy(acc.mean), width).numpy(), acc.count


@dataclass
class Fingerprint:
    """FP(R, S) of one synthetic set against one real set."""

    values: np.ndarray      # [H, W] (grayscale) or [3, H, W]
    n_real: int
    n_synthetic: int


def fingerprint(
    real_batches: Iterable[torch.Tensor],
    synthetic_batches: Iterable[torch.Tensor],
    grayscale: bool = True,
    limit: int | None = None,
) -> Fingerprint:
    """Wimmer 2024, eq. (1): mean log|F(S)| - mean log|F(R)| over up to ``limit`` images each."""
    real, n_r = mean_log_spectrum(real_batches, grayscale, limit)
    synth, n_s = mean_log_spectrum(synthetic_batches, grayscale, limit)
    if real.shape != synth.shape:
        raise ValueError(f"real and synthetic images differ in size: {real.shape} vs {synth.shape}")
    return Fingerprint(synth - real, n_r, n_s)


def render_spectrum(values: np.ndarray, vmin: float | None = None, vmax: float | None = None, cmap: str = "RdBu_r"):
    """Render a 2-D spectrum or fingerprint as an RGB PIL image with a colour map.

    A shared ``vmin``/``vmax`` lets several fingerprints be compared side by side; by default
    the scale is symmetric around zero at the 99.5th percentile of |values|.
    """
    from matplotlib import colormaps
    from PIL import Image

    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 3:
        v = v.mean(0)
    if vmin is None or vmax is None:
        lim = float(np.percentile(np.abs(v), 99.5)) or 1.0
        vmin, vmax = -lim, lim
    norm = np.clip((v - vmin) / max(vmax - vmin, 1e-12), 0, 1)
    rgb = (colormaps[cmap](norm)[..., :3] * 255).astype(np.uint8)
    return Image.fromarray(rgb)


def residual(images: torch.Tensor) -> torch.Tensor:
    """High-pass residual (image minus its 3x3 box blur), as Corvi/GRIP-style spectra use first:
    it removes scene content so the generator's high-frequency trace dominates the spectrum."""
    import torch.nn.functional as F

    k = torch.ones(3, 1, 3, 3, dtype=images.dtype) / 9.0
    blurred = F.conv2d(F.pad(images, (1, 1, 1, 1), mode="reflect"), k, groups=3)
    return images - blurred + 0.5
