"""The demo's generator designs: network style x up-sampling design x training loss, each with its group.

A detector that is to catch generators it never saw must be trained on more than one trace, and
tested on designs kept out of its training ([Petrželková 2024] Tables 4.1, 4.2: detectors fail on
generators they did not see). The *train* group is what the shipped detectors learn from; the
*held-out* group is never trained on, so its detection rate says how far a verdict carries to an
unseen design. Held-out designs combine a style, an up-sampler and a loss in ways the train group
does not.

Losses: ``spectral`` (content matched at low resolution plus the radial amplitude spectrum; the
detail is the up-samplers') and ``pixel`` (per-pixel L1 alone, which rewards the per-pixel median:
a soft image with a high-frequency deficit).
"""

from __future__ import annotations

from dataclasses import dataclass

from detectlab.generators.train import GeneratorTrainConfig

TRAIN, HELD_OUT = "train", "held-out"
LOSSES = {
    "spectral": dict(lowpass_weight=1.0, pixel_weight=0.2, spectral_weight=0.5, spectral_loss="radial"),
    "pixel": dict(lowpass_weight=0.0, pixel_weight=1.0, spectral_weight=0.0),
}


@dataclass(frozen=True)
class Design:
    """One generator design of the demo (its name is its folder's)."""

    name: str
    style: str        # residual, latent or denoiser (nets.STYLES)
    upsampler: str    # nets.UPSAMPLERS
    loss: str         # spectral or pixel (LOSSES)
    group: str        # train or held-out
    about: str

    @property
    def summary(self) -> str:
        """``latent, bilinear-conv, spectral loss, held-out group``."""
        return f"{self.style}, {self.upsampler}, {self.loss} loss, {self.group} group"

    def train_config(self, steps: int, width: int, seed: int) -> GeneratorTrainConfig:
        return GeneratorTrainConfig(upsampler=self.upsampler, style=self.style, width=width, steps=steps, seed=seed,
                                    **LOSSES[self.loss])


DESIGNS: dict[str, Design] = {d.name: d for d in (
    Design("transposed-conv", "residual", "transposed-conv", "spectral", TRAIN,
           "image-to-image residual net, transposed convolutions (kernel 4, stride 2)"),
    Design("resize-conv", "residual", "resize-conv", "spectral", TRAIN,
           "image-to-image residual net, nearest-neighbour resize + convolution"),
    Design("pixel-shuffle", "residual", "pixel-shuffle", "spectral", TRAIN,
           "image-to-image residual net, sub-pixel convolution (pixel shuffle)"),
    Design("latent-transposed-k3", "latent", "transposed-conv-k3", "pixel", TRAIN,
           "decoder from a 1/8-resolution latent, transposed convolutions (kernel 3, stride 2), pixel loss only"),
    Design("denoiser-transposed-conv", "denoiser", "transposed-conv", "spectral", TRAIN,
           "3-step denoiser, transposed convolutions (kernel 4, stride 2)"),
    Design("latent-bilinear", "latent", "bilinear-conv", "spectral", HELD_OUT,
           "decoder from a 1/8-resolution latent, bilinear resize + convolution"),
    Design("denoiser-pixel-shuffle", "denoiser", "pixel-shuffle", "pixel", HELD_OUT,
           "3-step denoiser, sub-pixel convolution, pixel loss only"),
)}


def designs_in(group: str) -> list[str]:
    """The names of the designs in ``group`` (train or held-out), in the demo's order."""
    return [d.name for d in DESIGNS.values() if d.group == group]


#: The residual image-to-image designs (one per up-sampling family, spectral loss): the demo's first three, which
#: the manipulated set and the three shipped ResNet-18 detectors use.
RESIDUAL = tuple(name for name, d in DESIGNS.items() if d.style == "residual")
