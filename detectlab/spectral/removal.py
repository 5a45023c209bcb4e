"""Fingerprint removal ([Wimmer 2024] §5, after Wesselkamp et al. 2022).

Both attacks edit each synthetic image's log-amplitude spectrum per colour channel and keep
its phase, so the image content stays while the generator's spectral excess is removed:

- Mean-Spectrum Attack (MSA): subtract ``strength`` x FP(R, S) from every image's
  log-amplitude, everywhere (FP per channel, eq. 1 of [Wimmer 2024]).
- Frequency-Peaks Attack (FPA): find the peaks of the fingerprint (bins whose value exceeds
  ``threshold`` standard deviations above the fingerprint's mean, DC excluded) and subtract
  ``strength`` x FP only there, so the periodic up-sampling peaks go and the rest of the
  spectrum is untouched.

They share one mechanism (``_edit_log_amplitude``); each is a small named unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def _edit_log_amplitude(images: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Subtract ``delta`` ([3, H, W], centred spectrum) from each image's log-amplitude; keep phase."""
    x = images.double()
    spec = torch.fft.fftshift(torch.fft.fft2(x, norm="ortho"), dim=(-2, -1))
    amp, phase = spec.abs(), torch.angle(spec)
    new_amp = torch.exp(torch.log(amp + 1e-8) - delta.double()[None])
    new = torch.polar(new_amp, phase)
    out = torch.fft.ifft2(torch.fft.ifftshift(new, dim=(-2, -1)), norm="ortho").real
    return out.clamp(0, 1).to(images.dtype)


def peak_mask(fingerprint: np.ndarray, threshold: float = 3.0) -> np.ndarray:
    """Bins of a (grayscale or per-channel) fingerprint that stand ``threshold`` std above its mean."""
    fp = np.asarray(fingerprint)
    fp2 = fp.mean(0) if fp.ndim == 3 else fp
    z = (fp2 - fp2.mean()) / (fp2.std() + 1e-12)
    mask = z > threshold
    h, w = fp2.shape
    mask[h // 2, w // 2] = False  # never touch DC (overall brightness)
    return mask


@dataclass
class RemovalMethod:
    name: str
    description: str

    def delta(self, fingerprint: np.ndarray, strength: float, threshold: float) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, images: torch.Tensor, fingerprint: np.ndarray, strength: float = 1.0,
                 threshold: float = 3.0) -> torch.Tensor:
        """Cleaned copies of ``images`` [B, 3, H, W] in [0, 1] given a per-channel FP [3, H, W]."""
        if not 0.0 <= strength <= 2.0:
            raise ValueError(f"strength must be in [0, 2], got {strength}")
        fp = np.asarray(fingerprint, dtype=np.float64)
        if fp.ndim == 2:
            fp = np.repeat(fp[None], 3, 0)
        if fp.shape[-2:] != tuple(images.shape[-2:]):
            raise ValueError(f"fingerprint is {fp.shape[-2:]}, images are {tuple(images.shape[-2:])}: sizes must match")
        return _edit_log_amplitude(images, torch.from_numpy(self.delta(fp, strength, threshold)))


class MeanSpectrumAttack(RemovalMethod):
    def __init__(self) -> None:
        super().__init__("msa", "Mean-Spectrum Attack: subtract strength × FP everywhere")

    def delta(self, fingerprint, strength, threshold):
        return strength * fingerprint


class FrequencyPeaksAttack(RemovalMethod):
    def __init__(self) -> None:
        super().__init__("fpa", "Frequency-Peaks Attack: subtract strength × FP at the fingerprint's peaks only")

    def delta(self, fingerprint, strength, threshold):
        return strength * fingerprint * peak_mask(fingerprint, threshold)[None]


REMOVALS: dict[str, RemovalMethod] = {"msa": MeanSpectrumAttack(), "fpa": FrequencyPeaksAttack()}


def mean_spectrum_attack(images, fingerprint, strength: float = 1.0):
    return REMOVALS["msa"](images, fingerprint, strength)


def frequency_peaks_attack(images, fingerprint, strength: float = 1.0, threshold: float = 3.0):
    return REMOVALS["fpa"](images, fingerprint, strength, threshold)
