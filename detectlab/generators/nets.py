"""Residual image-to-image generators that differ only in their up-sampling design.

The conditioning input is a degraded copy of a real photo (desaturated and blurred), as the
generators of [Wimmer 2024] (BicycleGAN, Palette) are conditioned on an enrollment image. The
network predicts a residual that is added to the input; the residual passes through two
up-sampling stages of the chosen design, so the design's spectral trace ends up in every
output (transposed convolution and pixel shuffle leave periodic peaks, resize + conv a
smoother pattern; cf. [Wimmer 2024] Fig. 5 and Wesselkamp et al. 2022).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF


def _transposed_conv(cin: int, cout: int) -> nn.Module:
    return nn.ConvTranspose2d(cin, cout, kernel_size=4, stride=2, padding=1)


def _resize_conv(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1))


def _pixel_shuffle(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout * 4, 3, padding=1), nn.PixelShuffle(2))


#: Up-sampling designs by name; each maps (in_channels, out_channels) to a 2x up-sampler.
UPSAMPLERS: dict[str, Callable[[int, int], nn.Module]] = {
    "transposed-conv": _transposed_conv,
    "resize-conv": _resize_conv,
    "pixel-shuffle": _pixel_shuffle,
}


class _ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualGenerator(nn.Module):
    """Encoder (two stride-2 stages) -> residual blocks -> decoder (two up-sampling stages).

    Args:
        upsampler: a key of ``UPSAMPLERS``.
        width: channels of the first stage; later stages use 2x and 3x.

    Shapes: ``forward`` takes a condition ``[B, 3, H, W]`` in [0, 1] (H, W divisible by 4)
    and returns an image of the same shape in [0, 1].
    """

    def __init__(self, upsampler: str = "transposed-conv", width: int = 24) -> None:
        super().__init__()
        if upsampler not in UPSAMPLERS:
            raise ValueError(f"unknown upsampler {upsampler!r}; choose one of {sorted(UPSAMPLERS)}")
        self.upsampler = upsampler
        self.width = width
        c1, c2, c3 = width, 2 * width, 3 * width
        act = nn.LeakyReLU(0.2)
        self.encoder = nn.Sequential(
            nn.Conv2d(3, c1, 3, padding=1), act,
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), act,
            nn.Conv2d(c2, c3, 4, stride=2, padding=1), act,
            _ResBlock(c3), _ResBlock(c3),
        )
        up = UPSAMPLERS[upsampler]
        self.decoder = nn.Sequential(up(c3, c2), act, up(c2, c1), act, nn.Conv2d(c1, 3, 3, padding=1))

    def forward(self, condition: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """``clamp=False`` is for training: a clamped output has no gradient outside [0, 1],
        and a generator pushed there early never comes back (it collapses to a flat colour)."""
        out = condition + self.decoder(self.encoder(condition))
        return out.clamp(0.0, 1.0) if clamp else out


#: The conditioning blur's sigma range in px (uniform per image). Milder than a full blur, so the
#: generator restores detail through its up-samplers instead of leaving the image soft: a demo
#: whose fakes are "missing high frequencies" teaches detectors that every smooth photo is fake.
CONDITION_SIGMA = (0.4, 0.9)


def degrade_condition(
    images: torch.Tensor, generator: torch.Generator, sigma: tuple[float, float] = CONDITION_SIGMA
) -> torch.Tensor:
    """The generators' conditioning input: a partly desaturated, blurred copy of each image.

    Saturation is kept at a random 10-50 % and a Gaussian blur of sigma drawn uniformly from
    ``sigma`` is applied, per image, from ``generator`` so a build is reproducible.
    """
    lo, hi = float(sigma[0]), float(sigma[1])
    out = []
    for img in images:
        keep = 0.1 + 0.4 * torch.rand((), generator=generator).item()
        s = lo + (hi - lo) * torch.rand((), generator=generator).item()
        gray = TF.rgb_to_grayscale(img, num_output_channels=3)
        mixed = gray + keep * (img - gray)
        out.append(TF.gaussian_blur(mixed, kernel_size=7, sigma=s))
    return torch.stack(out)
