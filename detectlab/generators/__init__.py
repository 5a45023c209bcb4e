"""DetectLab's own small generators for the embedded demo.

Three network styles (a residual image-to-image net, a decoder from a low-resolution latent, a few-step
denoiser), each with a choice of up-sampling design, trained with a spectral or a pixel loss
(``designs.DESIGNS``), so each leaves its own trace ([Wimmer 2024], Fig. 5: generator-specific traces).
"""

from detectlab.generators.nets import (
    STYLES, UPSAMPLERS, DenoisingGenerator, LatentDecoderGenerator, ResidualGenerator, build_generator, degrade_condition,
)
from detectlab.generators.train import GeneratorTrainConfig, load_generator, save_generator, train_generator

__all__ = [
    "STYLES",
    "UPSAMPLERS",
    "ResidualGenerator",
    "LatentDecoderGenerator",
    "DenoisingGenerator",
    "build_generator",
    "degrade_condition",
    "GeneratorTrainConfig",
    "train_generator",
    "save_generator",
    "load_generator",
]
