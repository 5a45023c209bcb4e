"""Evaluate a localizer on one split of an images/ + masks/ set: [Petrželková 2024] §4.5 and Table 4.8.

``evaluate_set(localizer, root, split=...)`` is what the Localize tab and ``detectlab localize
eval`` run: pixel precision/recall/IoU/dice, mAP50 and mAP50-95 (ultralytics' own, for kinds
that validate on a YOLO set: only then is that set written, in a temporary folder), all per
manipulated-area quartile, and with a detector the IoU between its Grad-CAM and the true masks.
Its result gives the per-quartile rows and writes them as CSV. ``train_localizer`` evaluates its
test split with the same ``evaluate_localizer``.

The split is the data layer's (by source group, from a seed), whether the images are read from
the folder itself or from the YOLO set written from it; a pair whose image or mask cannot be
used (not binary, not the image's size, unreadable) is left out, as the YOLO set leaves it out.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from detectlab.data import load_tensor, resize_center_crop
from detectlab.errors import DetectLabError
from detectlab.localize.dataset import YoloDataset, masked_splits, write_yolo_dataset
from detectlab.localize.localizer import Localizer
from detectlab.localize.masks import mask_area_fraction, read_mask
from detectlab.localize.metrics import (
    QUARTILES,
    PixelCounts,
    area_quartile,
    heatmap_mask_iou,
    pixel_counts,
    quartile_label,
)
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress

__all__ = ["SetEvaluation", "evaluate_localizer", "evaluate_set", "heatmap_iou_on_split", "quartile_table"]


@dataclass
class _Pair:
    """One image/mask pair of a split; ``area`` is known (and the pair checked) when it comes from a written set."""

    stem: str
    image: Path
    mask: Path
    area: float | None = None


def _pairs(data: YoloDataset | str | Path, split: str, seed: int) -> list[_Pair]:
    """The pairs of ``split``: a written YOLO set's re-encoded images, or the folder's own files split by the
    data layer (``seed``)."""
    if isinstance(data, YoloDataset):
        return [_Pair(stem, data.image(stem, split), Path(data.sources[stem][1]), data.areas[stem])
                for stem in data.splits[split]]
    _, parts = masked_splits(data, seed=seed)
    return [_Pair(image.stem, image, mask) for image, mask in parts[split]]


def _read(pair: _Pair) -> tuple[torch.Tensor, np.ndarray, float] | None:
    """(image ``[3, H, W]``, true mask at its size, area fraction); None for a folder's unusable pair."""
    try:
        image = load_tensor(pair.image)
        truth = read_mask(pair.mask, size=tuple(image.shape[-2:]), allow_empty=True)
    except DetectLabError:
        if pair.area is not None:  # a written set's pair was checked when it was written
            raise
        return None
    return image, truth, mask_area_fraction(truth) if pair.area is None else pair.area


def evaluate_localizer(localizer: Localizer, data: YoloDataset | str | Path, *, split: str = "test",
                       conf: float = 0.25, seed: int = 0, progress: Progress = null_progress,
                       cancel: CancelToken = NEVER_CANCEL) -> dict:
    """Petrželková 2024 §4.5 metrics of ``localizer`` on one split, overall and per area quartile.

    ``data`` is a written YOLO set or an images/ + masks/ folder (split with ``seed``); a kind
    that validates on a YOLO set gets one written from the folder in a temporary folder.
    Pixel metrics are micro-averaged (pixel counts summed over the images); a predicted
    mask is the union of the regions with confidence ≥ ``conf``. mAP50 / mAP50-95 are
    ultralytics' validation (masks, IoU ≥ 0.5 and 0.5:0.95) on the same images, per
    quartile on a data.yaml listing only that quartile's images.
    """
    entry = localizer.entry
    if entry.needs_yolo_set and not isinstance(data, YoloDataset):
        with tempfile.TemporaryDirectory(prefix="dl-localize-eval-") as tmp:
            yds = write_yolo_dataset(data, Path(tmp) / "data", seed=seed, progress=progress, cancel=cancel)
            return evaluate_localizer(localizer, yds, split=split, conf=conf, progress=progress, cancel=cancel)
    pairs = _pairs(data, split, seed)
    if not pairs:
        raise DetectLabError(f"the {split} split is empty; nothing to evaluate")
    total = PixelCounts()
    per_q = {q: PixelCounts() for q in QUARTILES}
    groups: dict[str, list[str]] = {q: [] for q in QUARTILES}   # stems per area quartile (Table 4.8)
    images = 0
    for k, pair in enumerate(pairs):
        cancel.check()
        progress(k + 1, len(pairs), f"Evaluating on {split}")
        read = _read(pair)
        if read is None:
            continue
        image, truth, area = read
        images += 1
        pred = np.zeros(truth.shape, bool)
        for region in localizer.predict(image, conf=conf):
            pred |= region.mask
        c = pixel_counts(pred, truth)
        total += c
        q = area_quartile(area)
        if q is not None:
            per_q[q] += c
            groups[q].append(pair.stem)
    if not images:
        raise DetectLabError(f"the {split} split has no usable image/mask pair; nothing to evaluate")
    out = {"images": images, "conf": conf, "pixel": total.as_dict(),
           "quartiles": {q: {"images": len(groups[q]), "pixel": per_q[q].as_dict()} for q in QUARTILES}}
    if entry.validate is not None:
        progress(0, None, "ultralytics validation (mAP)")
        out.update(entry.validate(localizer.model, data.data_yaml, split, localizer.imgsz))
        for q in QUARTILES:
            cancel.check()
            if groups[q]:
                sub = data.subset_yaml(split, groups[q], q.lower())
                out["quartiles"][q].update(entry.validate(localizer.model, sub, "val", localizer.imgsz))
    return out


def heatmap_iou_on_split(detector, data: YoloDataset | str | Path, *, split: str = "test", threshold: float = 0.5,
                         seed: int = 0, progress: Progress = null_progress,
                         cancel: CancelToken = NEVER_CANCEL) -> dict:
    """Mean IoU between a detector's Grad-CAM (thresholded at ``threshold``) and the true masks.

    The heatmap explains the detector's decision on the image it sees (resized and
    center-cropped to its input size); the mask gets the same crop (nearest) so both
    cover the same pixels. Images without a manipulated region are left out. ``data`` as for
    ``evaluate_localizer``. Returns the mean overall and per area quartile.
    """
    from detectlab.explain import heatmaps

    size = detector.preprocess.input_size
    per_image: dict[str, list[float]] = {q: [] for q in QUARTILES}
    everything = []
    pairs = _pairs(data, split, seed)
    for k, pair in enumerate(pairs):
        cancel.check()
        progress(k + 1, len(pairs), "Heatmap ↔ mask IoU")
        read = _read(pair)
        if read is None:
            continue
        image, mask, area = read
        truth = torch.from_numpy(mask)
        if not truth.any():
            continue
        maps, _ = heatmaps(detector, resize_center_crop(image, size)[None])
        seen = resize_center_crop(truth[None].float(), size, mode="nearest")[0] > 0.5
        iou = heatmap_mask_iou(maps[0][0], seen, threshold)
        everything.append(iou)
        per_image[area_quartile(area)].append(iou)
    return {"threshold": threshold, "images": len(everything),
            "mean_iou": float(np.mean(everything)) if everything else float("nan"),
            "quartiles": {q: float(np.mean(v)) if v else None for q, v in per_image.items()}}


def quartile_table(m: dict, heatmap: dict | None = None) -> list[dict]:
    """The per-quartile table ([Petrželková 2024] Table 4.8 plus pixel metrics and heatmap IoU), as rows."""
    rows = []
    for q, v in m["quartiles"].items():
        row = {"quartile": q, "area": quartile_label(q), "images": v["images"]}
        if "map50" in m:
            row["mAP50"] = v.get("map50", float("nan"))
        row.update({"precision": v["pixel"]["precision"], "recall": v["pixel"]["recall"], "dice": v["pixel"]["dice"]})
        if heatmap is not None:
            hq = heatmap["quartiles"].get(q)
            row["heatmap_iou"] = float("nan") if hq is None else hq
        rows.append(row)
    return rows


@dataclass
class SetEvaluation:
    """A localizer's numbers on one split of a set (``evaluate_set``).

    Attributes:
        localizer: the localizer's name.
        root: the images/ + masks/ folder.
        split: ``train``, ``val`` or ``test``.
        metrics: ``evaluate_localizer``'s, with ``heatmap_iou`` (``{"detector": name, ...}``) when a
            detector was compared.
        heatmap: ``heatmap_iou_on_split``'s, or None without a detector.
    """

    localizer: str
    root: Path
    split: str
    metrics: dict
    heatmap: dict | None = None

    def rows(self) -> list[dict]:
        """The per-quartile table (``quartile_table``)."""
        return quartile_table(self.metrics, self.heatmap)

    def write_csv(self, path: str | Path) -> Path:
        """The per-quartile table as a CSV file (through ``eval.tables.write_rows_csv``)."""
        from detectlab.eval.tables import write_rows_csv

        return write_rows_csv(self.rows(), path)


def evaluate_set(localizer: Localizer, root: str | Path, *, split: str = "test", seed: int = 0, conf: float = 0.25,
                 detector=None, detector_name: str = "", progress: Progress = null_progress,
                 cancel: CancelToken = NEVER_CANCEL) -> SetEvaluation:
    """Petrželková 2024 §4.5 / Table 4.8 numbers of ``localizer`` on ``split`` of the images/ + masks/ folder ``root``.

    The split is the data layer's from ``seed``. The YOLO set is written (in a temporary folder,
    removed at the end) only for a kind that validates on one (mAP); the U-Net reads the folder.
    With ``detector`` (a ``Detector``, named ``detector_name`` in the result), also the mean IoU
    between its Grad-CAM and the true masks, overall and per quartile.

    Raises:
        DatasetError: ``root`` is not an images/ + masks/ set. DetectLabError: the split is empty.
        Cancelled: ``cancel`` was set.
    """
    root = Path(root)
    with tempfile.TemporaryDirectory(prefix="dl-localize-eval-") as tmp:
        data: YoloDataset | Path = root
        if localizer.entry.needs_yolo_set:
            data = write_yolo_dataset(root, Path(tmp) / "data", seed=seed, progress=progress, cancel=cancel)
        metrics = evaluate_localizer(localizer, data, split=split, conf=conf, seed=seed, progress=progress,
                                     cancel=cancel)
        heatmap = None
        if detector is not None:
            heatmap = heatmap_iou_on_split(detector, data, split=split, seed=seed, progress=progress, cancel=cancel)
            metrics["heatmap_iou"] = {"detector": detector_name, **heatmap}
    return SetEvaluation(localizer.name, root, split, metrics, heatmap)
