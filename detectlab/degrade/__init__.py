"""Degradations of [Petrželková 2024] §4.3 (blur, JPEG, downsizing, visible patch) plus noise and resize-only,
their seeded chains, and their training augmentation."""

from detectlab.degrade.chain import Chain, Step, chain_of, parse_number, parse_step
from detectlab.degrade.ops import (
    DEGRADATIONS,
    JPEG,
    MASK_VALUE,
    DegradationError,
    DegradeAugConfig,
    Degradation,
    Downsize,
    GaussianBlur,
    GaussianNoise,
    PatchMask,
    RandomDegrade,
    Resize,
    check_images,
    degrade,
    downsize,
    gaussian_blur,
    gaussian_kernel1d,
    get_degradation,
    jpeg,
    patch_mask,
    psnr,
)

__all__ = [
    "DEGRADATIONS", "JPEG", "MASK_VALUE", "Chain", "DegradationError", "DegradeAugConfig", "Degradation",
    "Downsize", "GaussianBlur", "GaussianNoise", "PatchMask", "RandomDegrade", "Resize", "Step", "chain_of",
    "check_images", "degrade", "downsize", "gaussian_blur", "gaussian_kernel1d", "get_degradation", "jpeg",
    "parse_number", "parse_step", "patch_mask", "psnr",
]
