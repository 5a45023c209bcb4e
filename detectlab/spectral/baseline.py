"""The spectrum baseline detector of Durrall et al. 2019 (seed 001, Table 4.3).

Feature: the azimuthal average of the log-amplitude spectrum (grayscale), a 1-D curve of
``input_size // 2`` values; classifier: logistic regression. As a ``Detector`` it is
differentiable end to end, so it also serves in heatmap-free tabs, FGSM and every picker.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from detectlab.models.base import Detector, PreprocessConfig
from detectlab.spectral.fingerprint import log_spectrum, radial_profile


class SpectrumDetector(Detector):
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

    def fit(self, images: torch.Tensor, labels: np.ndarray, c: float = 1.0) -> None:
        """Fit standardisation and logistic regression on images [N, 3, S, S] (uint8 or [0, 1])."""
        from sklearn.linear_model import LogisticRegression

        feats = []
        with torch.no_grad():
            for lo in range(0, len(images), 256):
                x = images[lo : lo + 256]
                x = x.float() / 255.0 if x.dtype == torch.uint8 else x
                feats.append(radial_profile(log_spectrum(x).float()))
        f = torch.cat(feats)
        self.feat_mean.copy_(f.mean(0))
        self.feat_std.copy_(f.std(0).clamp(min=1e-6))
        z = ((f - self.feat_mean) / self.feat_std).numpy()
        clf = LogisticRegression(C=c, max_iter=2000).fit(z, np.asarray(labels))
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(clf.coef_).float())
            self.head.bias.copy_(torch.from_numpy(clf.intercept_).float())
