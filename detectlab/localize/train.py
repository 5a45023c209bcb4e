"""Train and evaluate localizers: one entry point for the CLI, the run queue and the defaults.

``train_localizer(config, progress, cancel)`` converts the masks (``dataset``), trains a
YOLOv8-seg (ultralytics) or the U-Net baseline, evaluates on the test split and writes
the checkpoint with its metadata. ``evaluate_localizer`` gives seed 001 §4.5's numbers:
mAP50 and mAP50-95 (ultralytics' own, YOLO only), pixel precision/recall/IoU/dice, and
both per manipulated-area quartile (Table 4.8).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from detectlab import config
from detectlab.data import load_tensor, resize_center_crop
from detectlab.errors import DetectLabError
from detectlab.localize.dataset import YoloDataset, masked_splits, quartile_counts, write_yolo_dataset
from detectlab.localize.localizer import Localizer, load_localizer
from detectlab.localize.masks import read_mask
from detectlab.localize.metrics import (
    QUARTILE_EDGES,
    QUARTILES,
    PixelCounts,
    area_quartile,
    heatmap_mask_iou,
    pixel_counts,
)
from detectlab.localize.yolo import YOLO_ARCHS, load_yolo, train_yolo, val_yolo
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress
from detectlab.train.config import (
    MAX_PATH_CHARS,
    TrainConfigError,
    _number,
    _shown,
    check_bool,
    check_name,
    check_text,
)

__all__ = ["LocalizerConfig", "LocalizerConfigError", "evaluate_localizer", "heatmap_iou_on_split", "quartile_table",
           "train_localizer"]

ARCHS = YOLO_ARCHS + ("unet",)


@dataclass
class LocalizerConfig:
    """What ``train_localizer`` trains. ``weights``: a local ultralytics ``.pt`` to start from."""

    arch: str = "yolov8n-seg"
    data: str = str(config.DEMO_INPAINT_DIR)
    name: str = ""
    epochs: int = 30
    imgsz: int = 128
    batch: int = 16
    seed: int = 0
    lr: float = 1e-3          # U-Net only (ultralytics picks its own)
    width: int = 16           # U-Net only
    weights: str = ""
    trust_weights: bool = False
    conf: float = 0.25
    out_dir: str = ""
    workers: int = 0
    threads: int = 0          # torch threads while training (0: ultralytics' choice for YOLO, torch's for U-Net)

    @property
    def kind(self) -> str:
        return "unet" if self.arch == "unet" else "yolo"

    @classmethod
    def from_dict(cls, d: dict) -> "LocalizerConfig":
        """A config from stored or submitted settings, every field checked (the one check the Train tab, the
        ``/train_localizer`` API, the run queue and the CLI share); raises ``LocalizerConfigError`` naming the field."""
        if not isinstance(d, dict):
            raise LocalizerConfigError(f"a localizer config is a table of settings, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known - {"kind"})
        if unknown:
            raise LocalizerConfigError(f"unknown localizer setting(s) {unknown}; known: {sorted(known)}")
        if d.get("kind", "localizer") != "localizer":
            raise LocalizerConfigError(f"kind must be 'localizer' for a localizer config, got {d.get('kind')!r}")
        return validate_localizer(cls(**{k: v for k, v in d.items() if k in known}))


class LocalizerConfigError(TrainConfigError):
    """A localizer setting out of its range: the message names the field and what it accepts."""


#: Allowed ranges of the numeric localizer settings: field -> (integer?, low, high, low open?, high open?)
LOCALIZER_LIMITS: dict[str, tuple[bool, float, float, bool, bool]] = {
    "epochs": (True, 1, 10_000, False, False),
    "imgsz": (True, 32, 1024, False, False),     # a multiple of 32 (YOLO strides), checked below
    "batch": (True, 1, 1024, False, False),
    "seed": (True, 0, 2**32 - 1, False, False),
    "lr": (False, 0.0, 1.0, True, True),
    "width": (True, 1, 256, False, False),
    "conf": (False, 0.0, 1.0, False, False),
    "workers": (True, 0, 64, False, False),
    "threads": (True, 0, 256, False, False),     # 0: ultralytics' choice (YOLO), torch's (U-Net)
}


def validate_localizer(cfg: LocalizerConfig) -> LocalizerConfig:
    """``cfg`` with every field checked and numbers as int/float; raises ``LocalizerConfigError``."""
    try:
        if not isinstance(cfg.arch, str) or cfg.arch not in ARCHS:
            raise LocalizerConfigError(f"unknown localizer architecture {_shown(cfg.arch)}; "
                                       f"choose one of {', '.join(ARCHS)}")
        for key, (integer, lo, hi, lo_open, hi_open) in LOCALIZER_LIMITS.items():
            setattr(cfg, key, _number(key, getattr(cfg, key), integer, lo, hi, lo_open, hi_open))
        if cfg.imgsz % 32:
            raise LocalizerConfigError(f"imgsz must be a multiple of 32 (YOLO strides), got {cfg.imgsz}")
        cfg.trust_weights = check_bool(cfg.trust_weights, "trust_weights")
        cfg.data = check_text(cfg.data, "data", MAX_PATH_CHARS)
        cfg.out_dir = check_text(cfg.out_dir, "out_dir", MAX_PATH_CHARS)
        cfg.weights = check_text(cfg.weights, "weights", MAX_PATH_CHARS).strip()
        cfg.name = check_name(cfg.name)
    except LocalizerConfigError:
        raise
    except TrainConfigError as exc:  # the shared checks: the same message, the localizer's error type
        raise LocalizerConfigError(str(exc)) from None
    if cfg.name and (cfg.name.startswith(".") or any(c in cfg.name for c in "/\\:")):
        raise LocalizerConfigError(f"name {_shown(cfg.name)} names the checkpoint file: letters, digits, '-', '_' "
                                   "and spaces, no '/', '\\', ':' or leading '.'")
    if cfg.weights and cfg.kind == "unet":
        raise LocalizerConfigError("weights= is for YOLO localizers (a local ultralytics .pt)")
    if cfg.weights and not cfg.weights.endswith(".pt"):
        raise LocalizerConfigError(f"weights must be an ultralytics .pt file, got {_shown(cfg.weights)}")
    if not cfg.name:
        cfg.name = f"localizer-{cfg.arch}" if cfg.kind == "yolo" else f"unet-w{cfg.width}"
    return cfg


def _versions() -> dict:
    import ultralytics

    from detectlab import __version__

    return {"detectlab": __version__, "torch": torch.__version__, "ultralytics": ultralytics.__version__,
            "python": platform.python_version()}


def train_localizer(cfg: dict | LocalizerConfig, progress: Progress = null_progress,
                    cancel: CancelToken = NEVER_CANCEL, on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train one localizer end to end; the run queue's and the CLI's entry point.

    Steps: YOLO labels from the masks with the data layer's split (for YOLO), training
    (``cancel`` checked per batch and epoch), evaluation on the test split, and the
    checkpoint (``<out_dir>/<name>.pt`` for YOLO, ``.safetensors`` for the U-Net) plus a
    ``.json`` with config, metrics, history and timings. ``on_epoch`` receives each epoch's
    row (``{"epoch": n, ...losses, val metrics}``) as it ends, for live curves. Work files live in a temporary
    folder under ``DETECTLAB_HOME/work`` that is removed at the end, whether it succeeded, failed or was
    cancelled; the checkpoint appears only when complete.

    Returns:
        ``{"name", "kind", "checkpoint", "metrics": {"test": ...}, "history", "train_seconds",
        "imgsz", "config", "dataset"}`` (JSON-serialisable).
    """
    cfg = cfg if isinstance(cfg, LocalizerConfig) else LocalizerConfig.from_dict(dict(cfg))
    out_dir = Path(cfg.out_dir) if cfg.out_dir else config.home() / "localizers"
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.weights:
        load_localizer(cfg.weights, allow_pickle=cfg.trust_weights)  # refuse early: opt-in, corrupt, not seg
    work_root = config.home() / "work"
    work_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{cfg.name}-", dir=work_root))
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        yds = write_yolo_dataset(cfg.data, work / "data", seed=cfg.seed, progress=progress, cancel=cancel)
        if cfg.kind == "yolo":
            trained = train_yolo(yds.data_yaml, work / "run", arch=cfg.arch, weights=cfg.weights or None,
                                 epochs=cfg.epochs, imgsz=cfg.imgsz, batch=cfg.batch, seed=cfg.seed,
                                 workers=cfg.workers, torch_threads=cfg.threads, progress=progress, cancel=cancel,
                                 on_epoch=on_epoch)
            localizer = Localizer(cfg.name, "yolo", load_yolo(trained["weights"]), cfg.imgsz)
        else:
            from detectlab.localize.unet import train_unet

            _, parts = masked_splits(cfg.data, seed=cfg.seed)
            threads = torch.get_num_threads()
            if cfg.threads:
                torch.set_num_threads(int(cfg.threads))
            try:
                trained = train_unet(parts["train"], parts["val"], imgsz=cfg.imgsz, width=cfg.width,
                                     epochs=cfg.epochs, batch=cfg.batch, lr=cfg.lr, seed=cfg.seed,
                                     progress=progress, cancel=cancel, on_epoch=on_epoch)
            finally:
                torch.set_num_threads(threads)
            localizer = Localizer(cfg.name, "unet", trained["model"], cfg.imgsz)
        train_seconds = time.perf_counter() - start
        # CPU seconds of this process: on a shared machine, closer to the time on idle cores than the wall clock
        train_cpu_seconds = time.process_time() - cpu_start
        metrics = {"test": evaluate_localizer(localizer, yds, split="test", conf=cfg.conf, progress=progress,
                                              cancel=cancel)}
        meta = {
            "name": cfg.name, "kind": cfg.kind, "arch": cfg.arch, "imgsz": cfg.imgsz,
            "config": asdict(cfg), "train_seconds": round(train_seconds, 1),
            "train_cpu_seconds": round(train_cpu_seconds, 1),
            "history": trained["history"], "metrics": metrics,
            "dataset": {"root": str(cfg.data), "seed": cfg.seed,
                        "splits": {k: len(v) for k, v in yds.splits.items()},
                        "test_quartiles": quartile_counts([yds.areas[s] for s in yds.splits["test"]]),
                        "skipped": len(yds.skipped),
                        "empty_masks": sum(1 for a in yds.areas.values() if a == 0)},
            "train_threads": cfg.threads or (max(1, (os.cpu_count() or 2) - 1) if cfg.kind == "yolo"
                                             else torch.get_num_threads()),
            "versions": _versions(),
        }
        checkpoint = _write_checkpoint(cfg, trained, localizer, meta, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {**meta, "checkpoint": str(checkpoint)}


def _write_checkpoint(cfg: LocalizerConfig, trained: dict, localizer: Localizer, meta: dict, out_dir: Path) -> Path:
    if cfg.kind == "unet":
        from detectlab.localize.unet import save_unet

        return save_unet(localizer.model, out_dir / f"{cfg.name}.safetensors", meta)
    target = out_dir / f"{cfg.name}.pt"
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(trained["weights"], tmp)
    target.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    tmp.replace(target)
    return target


def _gt_mask(yds: YoloDataset, stem: str, size: tuple[int, int]) -> np.ndarray:
    return read_mask(yds.sources[stem][1], size=size, allow_empty=True)


def evaluate_localizer(localizer: Localizer, yds: YoloDataset, *, split: str = "test", conf: float = 0.25,
                       progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL) -> dict:
    """Seed 001 §4.5 metrics of ``localizer`` on one split of ``yds``, overall and per area quartile.

    Pixel metrics are micro-averaged (pixel counts summed over the images); a predicted
    mask is the union of the regions with confidence ≥ ``conf``. mAP50 / mAP50-95 are
    ultralytics' validation (masks, IoU ≥ 0.5 and 0.5:0.95) on the same images, per
    quartile on a data.yaml listing only that quartile's images.
    """
    stems = yds.splits[split]
    if not stems:
        raise DetectLabError(f"the {split} split is empty; nothing to evaluate")
    total = PixelCounts()
    per_q = {q: PixelCounts() for q in QUARTILES}
    for k, stem in enumerate(stems):
        cancel.check()
        progress(k + 1, len(stems), f"Evaluating on {split}")
        image = load_tensor(yds.image(stem, split))
        truth = _gt_mask(yds, stem, tuple(image.shape[-2:]))
        pred = np.zeros(truth.shape, bool)
        for region in localizer.predict(image, conf=conf):
            pred |= region.mask
        c = pixel_counts(pred, truth)
        total += c
        q = area_quartile(yds.areas[stem])
        if q is not None:
            per_q[q] += c
    out = {"images": len(stems), "conf": conf, "pixel": total.as_dict(),
           "quartiles": {q: {"images": 0, "pixel": per_q[q].as_dict()} for q in QUARTILES}}
    groups = yds.quartile_stems(split)
    for q in QUARTILES:
        out["quartiles"][q]["images"] = len(groups[q])
    if localizer.kind == "yolo":
        progress(0, None, "ultralytics validation (mAP)")
        out.update(val_yolo(localizer.model, yds.data_yaml, split=split, imgsz=localizer.imgsz))
        for q in QUARTILES:
            cancel.check()
            if groups[q]:
                sub = yds.subset_yaml(split, groups[q], q.lower())
                out["quartiles"][q].update(val_yolo(localizer.model, sub, split="val", imgsz=localizer.imgsz))
    return out


def heatmap_iou_on_split(detector, yds: YoloDataset, *, split: str = "test", threshold: float = 0.5,
                         progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL) -> dict:
    """Mean IoU between a detector's Grad-CAM (thresholded at ``threshold``) and the true masks.

    The heatmap explains the detector's decision on the image it sees (resized and
    center-cropped to its input size); the mask gets the same crop (nearest) so both
    cover the same pixels. Returns the mean overall and per area quartile.
    """
    from detectlab.explain import heatmaps

    size = detector.preprocess.input_size
    per_image: dict[str, list[float]] = {q: [] for q in QUARTILES}
    everything = []
    stems = yds.splits[split]
    for k, stem in enumerate(stems):
        cancel.check()
        progress(k + 1, len(stems), "Heatmap ↔ mask IoU")
        image = load_tensor(yds.image(stem, split))
        truth = torch.from_numpy(_gt_mask(yds, stem, tuple(image.shape[-2:])))
        if not truth.any():
            continue
        maps, _ = heatmaps(detector, resize_center_crop(image, size)[None])
        seen = resize_center_crop(truth[None].float(), size, mode="nearest")[0] > 0.5
        iou = heatmap_mask_iou(maps[0][0], seen, threshold)
        everything.append(iou)
        per_image[area_quartile(yds.areas[stem])].append(iou)
    return {"threshold": threshold, "images": len(everything),
            "mean_iou": float(np.mean(everything)) if everything else float("nan"),
            "quartiles": {q: float(np.mean(v)) if v else None for q, v in per_image.items()}}


def quartile_table(m: dict, heatmap: dict | None = None) -> list[dict]:
    """The per-quartile table (seed 001 Table 4.8 plus pixel metrics and heatmap IoU), as rows."""
    rows = []
    for k, (q, v) in enumerate(m["quartiles"].items()):
        row = {"quartile": q, "area": f"{QUARTILE_EDGES[k]:.2f}-{QUARTILE_EDGES[k + 1]:.2f}", "images": v["images"]}
        if "map50" in m:
            row["mAP50"] = v.get("map50", float("nan"))
        row.update({"precision": v["pixel"]["precision"], "recall": v["pixel"]["recall"], "dice": v["pixel"]["dice"]})
        if heatmap is not None:
            hq = heatmap["quartiles"].get(q)
            row["heatmap_iou"] = float("nan") if hq is None else hq
        rows.append(row)
    return rows
