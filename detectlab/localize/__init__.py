"""Localization of manipulated regions (seed 001 §4.5): YOLOv8-seg and a U-Net baseline.

Masks become YOLO polygons (``masks``), image/mask folders an ultralytics data set on the
data layer's split (``dataset``), ultralytics trains and validates offline (``yolo``), the
U-Net is DetectLab's own (``unet``); ``localizer`` loads either behind one interface,
``train`` trains and evaluates them (mAP50, pixel metrics, area quartiles of Table 4.8)
and ``analyze`` localizes one image for the app, API and CLI.
"""

from detectlab.localize.analyze import Localization, localize_image, overlay_regions
from detectlab.localize.dataset import YoloDataset, masked_splits, write_yolo_dataset
from detectlab.localize.localizer import Localizer, load_localizer
from detectlab.localize.masks import (
    MaskError,
    check_mask,
    mask_area_fraction,
    mask_to_polygons,
    polygons_to_mask,
    read_mask,
    yolo_label_lines,
)
from detectlab.localize.metrics import (
    QUARTILE_EDGES,
    QUARTILES,
    PixelCounts,
    area_quartile,
    heatmap_mask_iou,
    pixel_counts,
    tp_fp_fn_image,
)
from detectlab.localize.train import (
    LocalizerConfig,
    LocalizerConfigError,
    evaluate_localizer,
    heatmap_iou_on_split,
    quartile_table,
    train_localizer,
)
from detectlab.localize.yolo import Region

__all__ = [
    "QUARTILES",
    "QUARTILE_EDGES",
    "Localization",
    "Localizer",
    "LocalizerConfig",
    "LocalizerConfigError",
    "MaskError",
    "PixelCounts",
    "Region",
    "YoloDataset",
    "area_quartile",
    "check_mask",
    "evaluate_localizer",
    "heatmap_iou_on_split",
    "heatmap_mask_iou",
    "load_localizer",
    "localize_image",
    "mask_area_fraction",
    "mask_to_polygons",
    "masked_splits",
    "overlay_regions",
    "pixel_counts",
    "polygons_to_mask",
    "quartile_table",
    "read_mask",
    "tp_fp_fn_image",
    "train_localizer",
    "write_yolo_dataset",
    "yolo_label_lines",
]
