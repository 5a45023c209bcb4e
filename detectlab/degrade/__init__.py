"""Degradations of seed 001 §4.3 (blur, JPEG, downsizing, visible patch) and their training augmentation."""

from detectlab.degrade.ops import (
    DEGRADATIONS,
    JPEG,
    MASK_VALUE,
    DegradeAugConfig,
    Degradation,
    Downsize,
    GaussianBlur,
    PatchMask,
    RandomDegrade,
    check_images,
    degrade,
    downsize,
    gaussian_blur,
    gaussian_kernel1d,
    jpeg,
    patch_mask,
)

__all__ = [
    "DEGRADATIONS", "JPEG", "MASK_VALUE", "DegradeAugConfig", "Degradation", "Downsize", "GaussianBlur",
    "PatchMask", "RandomDegrade", "check_images", "degrade", "downsize", "gaussian_blur", "gaussian_kernel1d",
    "jpeg", "patch_mask",
]
