"""Localization of manipulated regions ([Petrželková 2024] §4.5): YOLOv8-seg and a U-Net baseline.

Masks become YOLO polygons (``masks``), image/mask folders an ultralytics data set on the
data layer's split (``dataset``), ultralytics trains and validates offline (``yolo``), the
U-Net is DetectLab's own (``unet``); each registers its kind in ``registry``, ``localizer``
loads any of them behind one interface, ``train`` trains them, ``evaluate`` measures them
(mAP50, pixel metrics, area quartiles of Table 4.8, heatmap↔mask IoU), ``analyze`` localizes
one image for the app, API and CLI, and ``plots`` draws their figures.
"""

from detectlab.localize.analyze import Localization, localize_image, overlay_regions
from detectlab.localize.dataset import YoloDataset, masked_splits, write_yolo_dataset
from detectlab.localize.evaluate import (
    SetEvaluation,
    evaluate_localizer,
    evaluate_set,
    heatmap_iou_on_split,
    quartile_table,
)
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
    quartile_label,
    tp_fp_fn_image,
)
from detectlab.localize.registry import LocalizerKind, Region, localizer_kind, localizer_kinds
from detectlab.localize.train import (
    LocalizerConfig,
    LocalizerConfigError,
    localizer_run_config,
    store_uploaded_weights,
    train_localizer,
)

__all__ = [
    "QUARTILES",
    "QUARTILE_EDGES",
    "Localization",
    "Localizer",
    "LocalizerConfig",
    "LocalizerConfigError",
    "LocalizerKind",
    "MaskError",
    "PixelCounts",
    "Region",
    "SetEvaluation",
    "YoloDataset",
    "area_quartile",
    "check_mask",
    "evaluate_localizer",
    "evaluate_set",
    "heatmap_iou_on_split",
    "heatmap_mask_iou",
    "load_localizer",
    "localize_image",
    "localizer_kind",
    "localizer_kinds",
    "localizer_run_config",
    "mask_area_fraction",
    "mask_to_polygons",
    "masked_splits",
    "overlay_regions",
    "pixel_counts",
    "polygons_to_mask",
    "quartile_label",
    "quartile_table",
    "read_mask",
    "store_uploaded_weights",
    "tp_fp_fn_image",
    "train_localizer",
    "write_yolo_dataset",
    "yolo_label_lines",
]
