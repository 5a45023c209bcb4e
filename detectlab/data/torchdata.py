"""PyTorch datasets over discovered samples: decoded RGB tensors in [0, 1], fixed size.

Normalisation (ImageNet mean/std, CLIP's) belongs to the model wrapper, not here, so
attacks, degradations and spectra all see the same [0, 1] images (STYLE.md).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.utils.data import Dataset

from detectlab.data.decode import load_mask, load_tensor, resize_center_crop
from detectlab.data.discover import Sample

__all__ = ["ImageFolderDataset", "MaskedImageDataset"]

Transform = Callable[[torch.Tensor], torch.Tensor]
PairTransform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class ImageFolderDataset(Dataset):
    """Real/fake images as (image [3, size, size] in [0, 1], label float tensor, index).

    Each image is decoded with ``load_image`` (EXIF orientation, any mode to RGB), its
    shorter side resized to ``size`` and center-cropped (``resize_center_crop``); then
    ``transform`` (tensor -> tensor, e.g. flips, blur or JPEG augmentation) is applied.
    The index lets training code map a prediction back to its ``Sample``.

    A file that fails to decode raises ``ImageDecodeError`` naming it; ``discover`` with
    ``validate=True`` has normally removed such files already.

    Args:
        samples: the samples to serve, e.g. one split of ``split``.
        size: output height and width.
        transform: optional augmentation applied to the [3, size, size] tensor.
        max_pixels: pixel limit per image (default ``config.MAX_IMAGE_PIXELS``).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        size: int,
        transform: Transform | None = None,
        *,
        max_pixels: int | None = None,
    ) -> None:
        self.samples = list(samples)
        self.size = int(size)
        self.transform = transform
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        sample = self.samples[index]
        image = load_tensor(sample.path, self.size, max_pixels=self.max_pixels)
        if self.transform is not None:
            image = self.transform(image)
        return image, torch.tensor(float(sample.label)), index

    @property
    def labels(self) -> torch.Tensor:
        """Labels of all samples (0 real, 1 fake) as a long tensor, without decoding."""
        return torch.tensor([s.label for s in self.samples], dtype=torch.long)

    def sample_weights(self) -> torch.Tensor:
        """Per-sample weights 1 / (count of its class), for ``WeightedRandomSampler``.

        Class-weighted sampling, as in [Wimmer 2024]'s classifier training, so an unbalanced
        real/fake data set is drawn balanced.
        """
        counts = Counter(s.label for s in self.samples)
        return torch.tensor([1.0 / counts[s.label] for s in self.samples], dtype=torch.double)


class MaskedImageDataset(Dataset):
    """Partially manipulated images as (image [3, s, s], mask [1, s, s] float in {0, 1}, index).

    The same resize and center crop is applied to image and mask (the mask with nearest
    neighbour, so it stays binary). ``transform`` receives and returns both, so that
    geometric augmentations stay aligned.

    Args:
        pairs: (image path, mask path) pairs, e.g. ``MaskedDataset.pairs`` or one split.
        size: output height and width.
        transform: optional (image, mask) -> (image, mask) augmentation.
        max_pixels: pixel limit per image (default ``config.MAX_IMAGE_PIXELS``).
    """

    def __init__(
        self,
        pairs: Sequence[tuple[Path, Path]],
        size: int,
        transform: PairTransform | None = None,
        *,
        max_pixels: int | None = None,
    ) -> None:
        self.pairs = list(pairs)
        self.size = int(size)
        self.transform = transform
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        image_path, mask_path = self.pairs[index]
        image = load_tensor(image_path, max_pixels=self.max_pixels)
        mask = load_mask(mask_path, max_pixels=self.max_pixels).unsqueeze(0).float()
        if mask.shape[-2:] != image.shape[-2:]:
            # A mask drawn at another resolution still marks the same region.
            mask = resize_center_crop(mask, tuple(image.shape[-2:]), mode="nearest")
        image = resize_center_crop(image, self.size)
        mask = resize_center_crop(mask, self.size, mode="nearest")
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return image, mask, index
