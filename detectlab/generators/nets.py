"""The demo's generators: three styles of network, each with a choice of up-sampling design.

- ``ResidualGenerator`` (style ``residual``): an image-to-image network that adds a predicted
  residual to its conditioning input.
- ``LatentDecoderGenerator`` (style ``latent``): an autoencoder whose image is decoded from a latent
  at 1/8 resolution alone, as a latent-diffusion model's VAE decoder makes every output pixel.
- ``DenoisingGenerator`` (style ``denoiser``): a few-step denoiser that starts from the condition
  plus noise and alternates "predict the clean image" and "re-noise at a lower level", as a
  diffusion sampler run with few steps does.

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


def _transposed_conv_k3(cin: int, cout: int) -> nn.Module:
    """Kernel 3, stride 2: the kernel does not divide by the stride, so output pixels get uneven
    overlap (the classic checkerboard of Odena et al. 2016), unlike kernel 4."""
    return nn.ConvTranspose2d(cin, cout, kernel_size=3, stride=2, padding=1, output_padding=1)


def _bilinear_conv(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                         nn.Conv2d(cin, cout, 3, padding=1))


#: Up-sampling designs by name; each maps (in_channels, out_channels) to a 2x up-sampler. Three
#: families: transposed convolution (kernel 4 or 3), interpolation + convolution (nearest or
#: bilinear) and sub-pixel convolution (pixel shuffle).
UPSAMPLERS: dict[str, Callable[[int, int], nn.Module]] = {
    "transposed-conv": _transposed_conv,
    "resize-conv": _resize_conv,
    "pixel-shuffle": _pixel_shuffle,
    "transposed-conv-k3": _transposed_conv_k3,
    "bilinear-conv": _bilinear_conv,
}


def _check_upsampler(upsampler: str) -> None:
    if upsampler not in UPSAMPLERS:
        raise ValueError(f"unknown upsampler {upsampler!r}; choose one of {sorted(UPSAMPLERS)}")


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


def _encoder(channels_in: int, width: int, blocks: int) -> nn.Sequential:
    """Two stride-2 stages (width, 2x, 3x channels), then ``blocks`` residual blocks."""
    c1, c2, c3 = width, 2 * width, 3 * width
    act = nn.LeakyReLU(0.2)
    return nn.Sequential(
        nn.Conv2d(channels_in, c1, 3, padding=1), act,
        nn.Conv2d(c1, c2, 4, stride=2, padding=1), act,
        nn.Conv2d(c2, c3, 4, stride=2, padding=1), act,
        *(_ResBlock(c3) for _ in range(blocks)),
    )


def _decoder(upsampler: str, width: int) -> nn.Sequential:
    """Two 2x up-sampling stages of the ``upsampler`` design back to an RGB image."""
    c1, c2, c3 = width, 2 * width, 3 * width
    act = nn.LeakyReLU(0.2)
    up = UPSAMPLERS[upsampler]
    return nn.Sequential(up(c3, c2), act, up(c2, c1), act, nn.Conv2d(c1, 3, 3, padding=1))


class ResidualGenerator(nn.Module):
    """Encoder (two stride-2 stages) -> residual blocks -> decoder (two up-sampling stages).

    Args:
        upsampler: a key of ``UPSAMPLERS``.
        width: channels of the first stage; later stages use 2x and 3x.

    Shapes: ``forward`` takes a condition ``[B, 3, H, W]`` in [0, 1] (H, W divisible by 4)
    and returns an image of the same shape in [0, 1].
    """

    style = "residual"

    def __init__(self, upsampler: str = "transposed-conv", width: int = 24) -> None:
        super().__init__()
        _check_upsampler(upsampler)
        self.upsampler = upsampler
        self.width = width
        self.encoder = _encoder(3, width, blocks=2)
        self.decoder = _decoder(upsampler, width)

    def forward(self, condition: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """``clamp=False`` is for training: a clamped output has no gradient outside [0, 1],
        and a generator pushed there early never comes back (it collapses to a flat colour)."""
        out = condition + self.decoder(self.encoder(condition))
        return out.clamp(0.0, 1.0) if clamp else out

    def generate(self, condition: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One output per condition, in [0, 1] (deterministic: ``generator`` is not used)."""
        return self(condition)


class LatentDecoderGenerator(nn.Module):
    """An autoencoder: the condition is encoded to a ``latent_channels`` x H/8 x W/8 latent and the image is
    decoded from that latent alone, through three up-sampling stages of the chosen design.

    As in a latent-diffusion model's VAE decoder, no pixel of the input reaches the output directly:
    every detail is the decoder's, so its up-sampling trace covers the whole image.

    Shapes: ``[B, 3, H, W]`` in [0, 1] -> the same, H and W divisible by 8.
    """

    style = "latent"

    def __init__(self, upsampler: str = "bilinear-conv", width: int = 24, latent_channels: int = 16) -> None:
        super().__init__()
        _check_upsampler(upsampler)
        self.upsampler = upsampler
        self.width = width
        c1, c2, c3 = width, 2 * width, 3 * width
        act = nn.LeakyReLU(0.2)
        self.encoder = nn.Sequential(
            nn.Conv2d(3, c1, 3, padding=1), act,
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), act,
            nn.Conv2d(c2, c3, 4, stride=2, padding=1), act,
            nn.Conv2d(c3, c3, 4, stride=2, padding=1), act,
            nn.Conv2d(c3, latent_channels, 1),
        )
        up = UPSAMPLERS[upsampler]
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, c3, 3, padding=1), act, _ResBlock(c3),
            up(c3, c3), act, up(c3, c2), act, up(c2, c1), act, nn.Conv2d(c1, 3, 3, padding=1),
        )

    def forward(self, condition: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        out = 0.5 + self.decoder(self.encoder(condition))
        return out.clamp(0.0, 1.0) if clamp else out

    def generate(self, condition: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self(condition)


class DenoisingGenerator(nn.Module):
    """A few-step conditional denoiser: ``x = condition + sigma_0 n``; then, for each noise level, predict the
    clean image from ``x``, the condition and the level (a U-shaped net with two down and two up-sampling
    stages of the chosen design), and re-noise the prediction at the next, lower level with fresh noise. The
    last prediction is the output. Trained as a diffusion model is: the target noised at a sampling level,
    the condition beside it (an unconditioned denoiser applied to its own sharpened output sharpens again at
    every step).

    Sampling draws noise, so outputs depend on the ``generator`` passed to ``generate`` (reproducible
    for a seeded one).
    """

    style = "denoiser"
    #: The noise levels of sampling, high to low (images in [0, 1]).
    SIGMAS = (0.3, 0.15, 0.05)

    def __init__(self, upsampler: str = "pixel-shuffle", width: int = 24) -> None:
        super().__init__()
        _check_upsampler(upsampler)
        self.upsampler = upsampler
        self.width = width
        self.encoder = _encoder(7, width, blocks=1)  # noisy image, condition, noise level
        self.decoder = _decoder(upsampler, width)

    def denoise(self, noisy: torch.Tensor, sigma: torch.Tensor | float, condition: torch.Tensor) -> torch.Tensor:
        """The clean image predicted from ``noisy`` at noise level ``sigma`` (a float or one per image), given
        the condition."""
        level = torch.as_tensor(sigma, dtype=noisy.dtype, device=noisy.device).reshape(-1, 1, 1, 1)
        level = level.expand(noisy.shape[0], 1, *noisy.shape[-2:])
        return noisy + self.decoder(self.encoder(torch.cat([noisy, condition, level], dim=1)))

    def forward(self, condition: torch.Tensor, clamp: bool = True,
                generator: torch.Generator | None = None) -> torch.Tensor:
        x = condition + self.SIGMAS[0] * torch.randn(condition.shape, generator=generator)
        for k, sigma in enumerate(self.SIGMAS):
            clean = self.denoise(x, sigma, condition)
            if k + 1 < len(self.SIGMAS):
                x = clean + self.SIGMAS[k + 1] * torch.randn(condition.shape, generator=generator)
        return clean.clamp(0.0, 1.0) if clamp else clean

    def generate(self, condition: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self(condition, generator=generator)


#: Network styles by name.
STYLES: dict[str, type[nn.Module]] = {
    "residual": ResidualGenerator,
    "latent": LatentDecoderGenerator,
    "denoiser": DenoisingGenerator,
}


def build_generator(style: str, upsampler: str, width: int) -> nn.Module:
    """A generator network of ``style`` (a key of ``STYLES``) with the ``upsampler`` design."""
    if style not in STYLES:
        raise ValueError(f"unknown generator style {style!r}; choose one of {sorted(STYLES)}")
    return STYLES[style](upsampler, width)


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
