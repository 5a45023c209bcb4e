"""The spectrum baseline detector of Durrall et al. 2019 ([Petrželková 2024], Table 4.3), and the centred
log-amplitude spectrum it is built on.

Feature: the azimuthal average of the log-amplitude spectrum (grayscale), a 1-D curve of
``input_size // 2`` values; classifier: logistic regression. As a ``Detector`` it is
differentiable end to end, so it also serves in heatmap-free tabs, FGSM and every picker.

The spectrum functions live here, with the detector that needs them, so ``models`` stays below
``spectral``; ``detectlab.spectral`` (fingerprints, [Wimmer 2024] eq. 1) builds on them.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from detectlab.models.base import Detector, PreprocessConfig
from detectlab.models.registry import register_detector

_EPS = 1e-8


def _gray(images: torch.Tensor) -> torch.Tensor:
    x = images.float()
    return 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]


def half_log_amplitude(images: torch.Tensor, grayscale: bool = True) -> torch.Tensor:
    """log|F| on the half plane of ``rfft2`` (``[..., H, W//2 + 1]``), float32.

    A real image's spectrum is Hermitian, so this half holds all of it; means of log
    amplitudes are taken here and expanded to the full plane once (``full_centred``).
    """
    x = _gray(images) if grayscale else images.float()
    return torch.log(torch.fft.rfft2(x, norm="ortho").abs() + _EPS)


def full_centred(half: torch.Tensor, width: int) -> torch.Tensor:
    """Full, centred ``[..., H, W]`` spectrum from an ``rfft2`` half plane, by Hermitian symmetry."""
    h = half.shape[-2]
    rows = (-torch.arange(h)) % h                       # |F(-u, -v)| = |F(u, v)|
    cols = width - torch.arange(width // 2 + 1, width)  # missing columns mirror these
    mirrored = half[..., rows, :][..., cols]
    return torch.fft.fftshift(torch.cat([half, mirrored], dim=-1), dim=(-2, -1))


def log_spectrum(images: torch.Tensor, grayscale: bool = True) -> torch.Tensor:
    """Centred log-amplitude spectrum of a batch.

    Args:
        images: ``[B, 3, H, W]`` in [0, 1].
        grayscale: average the channels first (ITU-R 601 luma) and return ``[B, H, W]``;
            otherwise return ``[B, 3, H, W]``, one spectrum per channel.
    """
    return full_centred(half_log_amplitude(images, grayscale), images.shape[-1])


def radial_bins(h: int, w: int) -> torch.Tensor:
    """Integer radius of each bin of a centred ``h x w`` spectrum (0 = DC)."""
    yy, xx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
    return torch.sqrt((yy.double() ** 2 + xx.double() ** 2)).round().long()


def radial_profile(spectra: torch.Tensor, n_bins: int | None = None) -> torch.Tensor:
    """Azimuthal average of centred spectra ``[..., H, W]`` -> ``[..., n_bins]`` (differentiable).

    Durrall et al. 2019 use this 1-D curve of the log spectrum as their feature; bins beyond
    the inscribed circle (the corners) are left out so every bin is a full ring.
    """
    h, w = spectra.shape[-2:]
    return spectra.flatten(-2) @ _ring_means(h, w, n_bins or min(h, w) // 2, spectra.dtype)


@functools.lru_cache(maxsize=16)
def _ring_means(h: int, w: int, n_bins: int, dtype: torch.dtype) -> torch.Tensor:
    """``[h * w, n_bins]`` matrix averaging each full ring; built once per shape (every Durrall
    forward and every generator training step needs it)."""
    r = radial_bins(h, w).flatten()
    keep = r < n_bins
    onehot = torch.zeros(h * w, n_bins, dtype=dtype)
    onehot[torch.nonzero(keep).squeeze(1), r[keep]] = 1.0
    return onehot / onehot.sum(0, keepdim=True)


class SpectrumDetector(Detector):
    """Durrall et al. 2019: logistic regression on the standardised radial log spectrum."""

    kind = "spectrum"

    def __init__(self, input_size: int = 128) -> None:
        super().__init__("spectrum:durrall", PreprocessConfig(input_size=input_size))
        n = input_size // 2
        self.register_buffer("feat_mean", torch.zeros(n))
        self.register_buffer("feat_std", torch.ones(n))
        self.head = nn.Linear(n, 1)
        self.weights_info.source = "no backbone (closed-form logistic regression on spectra)"
        self.weights_info.loaded = True

    def features(self, x: torch.Tensor) -> torch.Tensor:
        prof = radial_profile(log_spectrum(x).float())
        return (prof - self.feat_mean) / self.feat_std

    def heatmap_targets(self):
        return []  # a 1-D spectral feature has no spatial map

    def fit(self, images: torch.Tensor, labels: np.ndarray, c: float = 1.0, augment=None, copies: int = 0,
            generator: torch.Generator | None = None, balanced: bool = False) -> None:
        """Fit standardisation and logistic regression on images [N, 3, S, S] (uint8 or [0, 1]).

        With ``augment`` (a callable on [B, 3, S, S] in [0, 1], e.g. ``RandomDegrade``) the fit also
        sees ``copies`` randomly degraded copies of the set, labels repeated: the training-time
        post-processing of CNNDetection given to a closed-form model. Only the 1-D features are kept,
        so memory grows by ``copies`` x N x S/2 floats, not by images. ``balanced`` weighs each class
        equally (the closed-form counterpart of weighted sampling), so a fake-heavy set does not shift
        the decision towards "fake".
        """
        from sklearn.linear_model import LogisticRegression

        feats = []
        with torch.no_grad():
            for copy in range(1 + (copies if augment is not None else 0)):
                for lo in range(0, len(images), 256):
                    x = images[lo : lo + 256]
                    x = x.float() / 255.0 if x.dtype == torch.uint8 else x
                    if copy:
                        x = augment(x, generator=generator)
                    feats.append(radial_profile(log_spectrum(x).float()))
        f = torch.cat(feats)
        y = np.tile(np.asarray(labels), len(f) // len(images))
        self.feat_mean.copy_(f.mean(0))
        self.feat_std.copy_(f.std(0).clamp(min=1e-6))
        z = ((f - self.feat_mean) / self.feat_std).numpy()
        clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced" if balanced else None).fit(z, y)
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(clf.coef_).float())
            self.head.bias.copy_(torch.from_numpy(clf.intercept_).float())


register_detector("spectrum:durrall", "azimuthal average of the log spectrum + logistic regression (Durrall 2019)",
                  lambda pretrained=None, input_size=128: SpectrumDetector(input_size), family="spectrum")
