"""Train and evaluate localizers: one entry point for the CLI, the run queue and the defaults.

``train_localizer(config, progress, cancel)`` converts the masks (``dataset``), trains the
registered kind of the config's architecture (``registry``: YOLOv8-seg through ultralytics, or
the U-Net baseline), evaluates on the test split and writes the checkpoint with its metadata.
``evaluate_localizer`` gives [Petrželková 2024] §4.5's numbers: mAP50 and mAP50-95 (ultralytics' own,
for kinds that validate on a YOLO set), pixel precision/recall/IoU/dice, and both per
manipulated-area quartile (Table 4.8). ``store_uploaded_weights`` keeps a user's ``.pt`` to start
from, checked without unpickling it.
"""

from __future__ import annotations

import hashlib
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import torch

from detectlab import config
from detectlab.errors import CheckpointError
from detectlab.localize.dataset import quartile_counts, write_yolo_dataset
from detectlab.localize.evaluate import evaluate_localizer, heatmap_iou_on_split, quartile_table
from detectlab.localize.localizer import Localizer, load_localizer
from detectlab.localize.registry import LocalizerKind, kind_for_arch, localizer_archs
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

__all__ = ["LocalizerConfig", "LocalizerConfigError", "evaluate_localizer", "heatmap_iou_on_split",
           "localizer_run_config", "quartile_table", "store_uploaded_weights", "train_localizer"]


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
    def entry(self) -> LocalizerKind | None:
        """The registered kind that trains ``arch`` (None for an unknown architecture)."""
        return kind_for_arch(self.arch) if isinstance(self.arch, str) else None

    @property
    def kind(self) -> str:
        """The registered kind's name (``yolo``, ``unet``); empty for an unknown architecture."""
        entry = self.entry
        return entry.name if entry is not None else ""

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
        if cfg.entry is None:
            raise LocalizerConfigError(f"unknown localizer architecture {_shown(cfg.arch)}; "
                                       f"choose one of {', '.join(localizer_archs())}")
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
    entry = cfg.entry
    if cfg.weights and not entry.takes_weights:
        raise LocalizerConfigError("weights= is for YOLO localizers (a local ultralytics .pt)")
    if cfg.weights and not cfg.weights.endswith(entry.suffix):
        raise LocalizerConfigError(f"weights must be an ultralytics .pt file, got {_shown(cfg.weights)}")
    if not cfg.name:
        cfg.name = entry.default_name(cfg)
    return cfg


def localizer_run_config(*, arch, epochs, imgsz, batch, seed, threads, trust_weights: bool = False) -> dict:
    """The settings of a queued localizer run (``kind: localizer``), every number checked now
    (``LocalizerConfig.from_dict``) before a data set or an uploaded file is touched; ``data`` and
    ``weights`` are filled in by the caller once those are resolved."""
    cfg = {"kind": "localizer", "arch": arch, "data": "", "epochs": epochs, "imgsz": imgsz, "batch": batch,
           "seed": seed, "threads": threads, "weights": "", "trust_weights": bool(trust_weights)}
    LocalizerConfig.from_dict(cfg)  # refuse a bad number now, whatever the data set
    return cfg


def store_uploaded_weights(path: str | Path, *, trusted: bool) -> Path:
    """A copy of an uploaded ``.pt`` to start a YOLO localizer from, in ``DETECTLAB_HOME/weights`` (an upload
    cache may be cleaned before a queued run starts), named by its content; refused unless the user trusts it.

    Nothing in the file runs here: its pickle is read as opcodes only (``inspect_ultralytics_pt``: not an
    ultralytics segmentation checkpoint, refused); the training worker process loads it.

    Raises:
        CheckpointError: not trusted, or not an ultralytics segmentation checkpoint (the message names the file).
    """
    from detectlab.localize.yolo import inspect_ultralytics_pt

    path = Path(path)
    if not trusted:
        raise CheckpointError(f"{path.name}: a .pt file is a pickle, and loading it lets the file run code as "
                              "the server's user; tick 'I trust this .pt' to start from it (only the training "
                              "worker loads it)")
    inspect_ultralytics_pt(path)  # refuse now, without unpickling: not a torch file, not ultralytics, not seg
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    dest = config.home() / "weights" / f"{digest}.pt"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():
        shutil.copyfile(path, dest)
    return dest


def _versions() -> dict:
    import ultralytics

    from detectlab import __version__

    return {"detectlab": __version__, "torch": torch.__version__, "ultralytics": ultralytics.__version__,
            "python": platform.python_version()}


def train_localizer(cfg: dict | LocalizerConfig, progress: Progress = null_progress,
                    cancel: CancelToken = NEVER_CANCEL, on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train one localizer end to end; the run queue's and the CLI's entry point.

    Steps: YOLO labels from the masks with the data layer's split (the YOLO kind trains on them; every
    kind's test metrics and the set's counts read them), training by the registered kind of
    ``cfg.arch`` (``cancel`` checked per batch and epoch), evaluation on the test split, and the
    checkpoint (``<out_dir>/<name>`` with the kind's suffix: ``.pt`` for YOLO, ``.safetensors`` for
    the U-Net) plus a ``.json`` with config, metrics, history and timings. ``on_epoch`` receives each epoch's
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
        entry = cfg.entry
        # the U-Net trains on the folder itself; its test metrics and the set's counts read the written set too
        yds = write_yolo_dataset(cfg.data, work / "data", seed=cfg.seed, progress=progress, cancel=cancel)
        trained = entry.train(cfg, yds, work, progress=progress, cancel=cancel, on_epoch=on_epoch)
        localizer = Localizer(cfg.name, entry.name, trained["model"], cfg.imgsz)
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
            "train_threads": trained["threads"],
            "versions": _versions(),
        }
        checkpoint = entry.save(trained, meta, out_dir / f"{cfg.name}{entry.suffix}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {**meta, "checkpoint": str(checkpoint)}
