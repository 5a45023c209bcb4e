"""Data sets: decode any image safely to RGB, discover folder layouts, split, extract uploads.

Data flows one way: files -> ``detectlab.data`` (decode, validate, convert to RGB tensors
in [0, 1]) -> capabilities. No other subpackage reads image files itself.
"""

from detectlab.data.archive import extract_zip
from detectlab.data.decode import (
    IMAGE_EXTENSIONS,
    ImageInfo,
    is_image_file,
    load_image,
    load_mask,
    load_tensor,
    probe_image,
    resize_center_crop,
    to_pil,
    to_rgb,
    to_tensor,
)
from detectlab.data.discover import LAYOUTS, DetectionDataset, MaskedDataset, PathList, Sample, discover
from detectlab.data.splits import SPLIT_NAMES, split, split_files, split_summary
from detectlab.data.torchdata import ImageFolderDataset, MaskedImageDataset

__all__ = [
    "IMAGE_EXTENSIONS",
    "LAYOUTS",
    "SPLIT_NAMES",
    "DetectionDataset",
    "ImageFolderDataset",
    "ImageInfo",
    "MaskedDataset",
    "MaskedImageDataset",
    "PathList",
    "Sample",
    "discover",
    "extract_zip",
    "is_image_file",
    "load_image",
    "load_mask",
    "load_tensor",
    "probe_image",
    "resize_center_crop",
    "split",
    "split_files",
    "split_summary",
    "to_pil",
    "to_rgb",
    "to_tensor",
]
