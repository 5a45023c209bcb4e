"""DetectLab's own small image-to-image generators for the embedded demo.

Each generator is the same residual encoder-decoder with a different up-sampling design,
so each leaves its own spectral trace ([Wimmer 2024], Fig. 5: generator-specific traces).
"""

from detectlab.generators.nets import UPSAMPLERS, ResidualGenerator, degrade_condition
from detectlab.generators.train import GeneratorTrainConfig, load_generator, save_generator, train_generator

__all__ = [
    "UPSAMPLERS",
    "ResidualGenerator",
    "degrade_condition",
    "GeneratorTrainConfig",
    "train_generator",
    "save_generator",
    "load_generator",
]
