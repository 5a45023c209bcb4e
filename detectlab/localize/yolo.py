"""YOLOv8-seg localization through ultralytics, fully offline.

[Petrželková 2024] §4.5 trains YOLOv8s-seg on the binary masks converted to polygons (instance
segmentation, one instance per manipulated region). Offline, ``YOLO("yolov8n-seg.pt")``
would download from GitHub: models are built from the architecture yaml (random init) or
loaded from a local ``.pt``. ``config.set_offline_env`` runs before ultralytics is imported
(its settings dir and font path are read at import), so no lookup is made at all.

Trust: a ``.pt`` is a pickle and ultralytics' loader unpickles it (``weights_only=False``):
loading one runs whatever code it carries, as the user the process runs as. DetectLab's own
shipped localizer is one; a user's file is loaded only when the caller says the user opted
in (the app's upload widget asks). The app's server never loads a user's ``.pt`` to train
from: ``inspect_ultralytics_pt`` reads its pickle's opcodes without running them, and the
training worker process loads it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from detectlab import config
from detectlab.errors import CheckpointError
from detectlab.localize.masks import polygons_to_mask
from detectlab.localize.registry import LocalizerKind, Region, register_localizer
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress

__all__ = ["YOLO", "YOLO_ARCHS", "Region", "inspect_ultralytics_pt", "load_yolo", "predict_yolo", "train_yolo",
           "val_yolo"]

YOLO_ARCHS = ("yolov8n-seg", "yolov8s-seg")


def _yolo_class():
    config.set_offline_env()
    from ultralytics import YOLO

    logging.getLogger("ultralytics").setLevel(logging.WARNING)
    return YOLO


@contextlib.contextmanager
def _keep_threads():
    """Ultralytics sets torch to cpu_count - 1 threads whenever it selects the CPU (predict, val,
    train): process-wide, so without this every other tab's model would run on one thread after
    the first localization."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def build_yolo(arch: str):
    """A segmentation model from ultralytics' architecture yaml (random init, no download)."""
    if arch not in YOLO_ARCHS:
        raise CheckpointError(f"unknown YOLO architecture {arch!r}; choose one of {', '.join(YOLO_ARCHS)} "
                              "or give a local .pt file")
    return _yolo_class()(f"{arch}.yaml", task="segment")


def load_yolo(path: str | Path):
    """Load a local ultralytics ``.pt`` (unpickles: see the module docstring) and check it segments.

    Raises:
        CheckpointError: missing, not loadable (corrupt, not a torch file), or not a
            segmentation model (a detector or classifier ``.pt``); the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such localizer file")
    if path.suffix != ".pt":
        raise CheckpointError(f"{path.name}: a YOLO localizer is an ultralytics .pt file")
    YOLO = _yolo_class()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            model = YOLO(str(path))
    except Exception as exc:  # torch/pickle/zip errors of every kind
        raise CheckpointError(f"{path.name}: cannot be loaded as an ultralytics model "
                              f"({type(exc).__name__}: {str(exc)[:200]})") from exc
    if model.task != "segment":
        raise CheckpointError(f"{path.name}: is an ultralytics '{model.task}' model, not a segmentation "
                              "model (YOLOv8-seg); localization needs masks")
    return model


#: The biggest pickle stream ``inspect_ultralytics_pt`` reads (an ultralytics .pt's data.pkl is well under this).
_MAX_PICKLE_BYTES = 256 << 20


def _pickle_globals(data: bytes, limit: int = 8) -> set[str]:
    """``"module name"`` of every class or function the pickle stream(s) in ``data`` refer to, read without
    unpickling: ``pickletools`` lists the opcodes, nothing is imported or called.

    Protocol 0-3 name them in GLOBAL opcodes; protocol 4+ (STACK_GLOBAL) takes the last two strings
    pushed (or fetched back from the memo). Up to ``limit`` streams back to back (torch's legacy format
    writes several).
    """
    import pickletools

    found: set[str] = set()
    stream = io.BytesIO(data)
    for k in range(limit):
        if stream.tell() >= len(data):
            break
        strings: list[str] = []
        memo: dict[int, str] = {}
        try:
            for op, arg, _pos in pickletools.genops(stream):
                name = op.name
                if name in ("GLOBAL", "INST"):
                    found.add(str(arg))
                elif isinstance(arg, str) and name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE",
                                                       "STRING", "BINSTRING", "SHORT_BINSTRING"):
                    strings.append(arg)
                elif name in ("BINPUT", "LONG_BINPUT", "PUT") and strings:
                    memo[int(arg)] = strings[-1]
                elif name == "MEMOIZE" and strings:
                    memo[len(memo)] = strings[-1]
                elif name in ("BINGET", "LONG_BINGET", "GET") and int(arg) in memo:
                    strings.append(memo[int(arg)])
                elif name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.add(f"{strings[-2]} {strings[-1]}")
        except Exception:  # noqa: BLE001 - the first stream must parse; later bytes may be raw tensor storage
            if k == 0:
                raise
            break
    return found


def inspect_ultralytics_pt(path: str | Path) -> str:
    """Check, WITHOUT unpickling, that ``path`` looks like an ultralytics segmentation checkpoint; returns its
    model class (e.g. ``SegmentationModel``).

    A ``.pt`` is a pickle: loading it can run any code it carries. This reads the pickle's opcodes
    only (the zip's ``data.pkl``, or the raw stream of torch's legacy format), so a web server can
    refuse a file that is not an ultralytics checkpoint before anything in it runs; the file is
    loaded, with the user's explicit trust, only in the training worker process. Passing this check
    does not make a file safe: a hostile file can name ultralytics classes too.

    Raises:
        CheckpointError: missing, not a torch file, not an ultralytics model, or not a segmentation model.
    """
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path.name}: no such localizer file")
    if path.suffix != ".pt":
        raise CheckpointError(f"{path.name}: a YOLO localizer is an ultralytics .pt file")
    nothing_ran = "it was not loaded, so nothing in it ran"
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path.name}: the file is empty (0 bytes); not an ultralytics checkpoint")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                pkl = [i for i in z.infolist() if i.filename.endswith("data.pkl")]
                if not pkl or pkl[0].file_size > _MAX_PICKLE_BYTES:
                    raise CheckpointError(f"{path.name}: not a torch checkpoint (no data.pkl inside); {nothing_ran}")
                data = z.read(pkl[0])
        else:
            if path.stat().st_size > _MAX_PICKLE_BYTES:
                raise CheckpointError(f"{path.name}: not an ultralytics checkpoint (too large for a legacy torch "
                                      f"file); {nothing_ran}")
            data = path.read_bytes()
        names = _pickle_globals(data)
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - a truncated zip, garbage bytes: pickletools' and zipfile's errors
        raise CheckpointError(f"{path.name}: cannot be read as a torch checkpoint ({type(exc).__name__}); "
                              f"{nothing_ran}") from None
    models = sorted(n.split(" ", 1)[1] for n in names if n.startswith("ultralytics.nn.tasks "))
    if not models:
        raise CheckpointError(f"{path.name}: not an ultralytics checkpoint (its pickle names no ultralytics model "
                              f"class); {nothing_ran}")
    if "SegmentationModel" not in models:
        raise CheckpointError(f"{path.name}: an ultralytics {', '.join(models)}, not a segmentation model "
                              f"(YOLOv8-seg); localization needs masks; {nothing_ran}")
    return "SegmentationModel"


def train_yolo(
    data_yaml: str | Path,
    out_dir: str | Path,
    *,
    arch: str = "yolov8n-seg",
    weights: str | Path | None = None,
    epochs: int = 30,
    imgsz: int = 128,
    batch: int = 16,
    seed: int = 0,
    workers: int = 0,
    torch_threads: int = 0,
    progress: Progress = null_progress,
    cancel: CancelToken = NEVER_CANCEL,
    on_epoch: Callable[[dict], None] | None = None,
) -> dict:
    """Train a YOLOv8-seg localizer with ultralytics on the CPU; returns the best weights and history.

    ``weights`` (a local ``.pt``, e.g. official pretrained weights) starts from those,
    else ``arch`` is built from its yaml. ``cancel`` is checked after every batch and
    epoch (ultralytics callbacks); a cancel raises ``Cancelled`` and ``out_dir`` is removed.

    Returns:
        ``{"weights": Path to best.pt (optimizer stripped, fp16), "history": [per-epoch
        losses and val mAP], "best_val": ultralytics' validation of best.pt, "seconds": float}``.
    """
    model = load_yolo(weights) if weights else build_yolo(arch)
    out_dir = Path(out_dir)
    history: list[dict] = []

    def on_batch_end(trainer):
        cancel.check()
        nb = max(len(trainer.train_loader), 1)
        progress(trainer.epoch * nb + getattr(trainer, "_dl_batch", 0), trainer.epochs * nb,
                 f"Training YOLO (epoch {trainer.epoch + 1}/{trainer.epochs})")
        trainer._dl_batch = getattr(trainer, "_dl_batch", 0) + 1

    def on_epoch_start(trainer):
        trainer._dl_batch = 0

    threads = torch.get_num_threads()

    def on_train_start(trainer):
        # ultralytics sets cpu_count - 1 threads for CPU training; ``torch_threads`` overrides it
        if torch_threads:
            torch.set_num_threads(int(torch_threads))

    final: dict = {}

    def on_fit_epoch_end(trainer):
        m = {k: float(v) for k, v in (trainer.metrics or {}).items() if isinstance(v, (int, float))}
        if len(history) >= trainer.epochs:
            # ultralytics fires this once more after training, for the validation of best.pt
            final.update(m)
            return
        row = {"epoch": len(history) + 1}
        row.update({k: float(v) for k, v in trainer.label_loss_items(trainer.tloss, prefix="train").items()})
        row.update(m)
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        cancel.check()

    for event, fn in (("on_train_batch_end", on_batch_end), ("on_train_epoch_start", on_epoch_start),
                      ("on_train_start", on_train_start),
                      ("on_fit_epoch_end", on_fit_epoch_end)):
        model.add_callback(event, fn)
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            model.train(data=str(data_yaml), epochs=int(epochs), imgsz=int(imgsz), batch=int(batch),
                        device="cpu", workers=int(workers), seed=int(seed), deterministic=True,
                        project=str(out_dir.parent), name=out_dir.name, exist_ok=True, plots=False,
                        amp=False, verbose=False, pretrained=bool(weights), val=True, patience=0,
                        cache=False, scale=0.0, translate=0.1, hsv_h=0.0, close_mosaic=max(1, int(epochs) // 5))
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    finally:
        torch.set_num_threads(threads)
    best = out_dir / "weights" / "best.pt"
    if not best.exists():
        best = out_dir / "weights" / "last.pt"
    return {"weights": best, "history": history, "best_val": final, "seconds": time.perf_counter() - start}


def val_yolo(model, data_yaml: str | Path, *, split: str = "test", imgsz: int = 128, batch: int = 16) -> dict:
    """Ultralytics' own mask mAP50 and mAP50-95 (and box mAP50) of ``model`` on one split."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dl-yolo-val-") as tmp, contextlib.redirect_stdout(io.StringIO()), \
            _keep_threads():
        r = model.val(data=str(data_yaml), split=split, imgsz=int(imgsz), batch=int(batch), device="cpu",
                      plots=False, verbose=False, project=tmp, name="val", workers=0)
    return {"map50": float(r.seg.map50), "map50_95": float(r.seg.map), "box_map50": float(r.box.map50)}


def predict_yolo(model, image: torch.Tensor, *, conf: float = 0.25, imgsz: int = 128) -> list[Region]:
    """Predicted regions of one image ``[3, H, W]`` in [0, 1], each a mask of the image's size.

    Ultralytics takes numpy images as BGR uint8; its polygons (``masks.xy``, in the
    original image's pixels) are rasterized back by ``polygons_to_mask``.
    """
    h, w = image.shape[-2:]
    rgb = (image.detach().permute(1, 2, 0).clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    with contextlib.redirect_stdout(io.StringIO()), _keep_threads():
        results = model.predict(np.ascontiguousarray(rgb[..., ::-1]), conf=float(conf), imgsz=int(imgsz),
                                device="cpu", verbose=False, retina_masks=False)
    r = results[0]
    if r.masks is None:
        return []
    regions = []
    for poly, score in zip(r.masks.xy, r.boxes.conf.tolist()):
        poly = np.asarray(poly, dtype=np.float64)
        if len(poly) < 3:
            continue
        regions.append(Region(polygons_to_mask([poly], (h, w), normalized=False), float(score), poly))
    regions.sort(key=lambda reg: -reg.confidence)
    return regions


# --------------------------------------------------------------------------- the registered kind


def _load_checkpoint(path: Path) -> tuple[object, int, dict]:
    """A YOLO localizer file, its image size (from its sidecar ``.json``, else ultralytics' own) and metadata."""
    model = load_yolo(path)
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    imgsz = int(meta.get("imgsz") or (getattr(model, "overrides", {}) or {}).get("imgsz") or 128)
    return model, imgsz, meta


def _train(cfg, yds, work: Path, *, progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
           on_epoch: Callable[[dict], None] | None = None) -> dict:
    """``train_yolo`` on the written data set (``yds``) with a ``LocalizerConfig``'s settings; best weights loaded."""
    trained = train_yolo(yds.data_yaml, work / "run", arch=cfg.arch, weights=cfg.weights or None, epochs=cfg.epochs,
                         imgsz=cfg.imgsz, batch=cfg.batch, seed=cfg.seed, workers=cfg.workers,
                         torch_threads=cfg.threads, progress=progress, cancel=cancel, on_epoch=on_epoch)
    # ultralytics trains on cpu_count - 1 threads unless told otherwise
    return {**trained, "model": load_yolo(trained["weights"]),
            "threads": cfg.threads or max(1, (os.cpu_count() or 2) - 1)}


def _save(trained: dict, meta: dict, path: Path) -> Path:
    """The best weights copied to ``path`` with ``meta`` beside it (``.json``); the ``.pt`` appears when complete."""
    tmp = path.with_name(path.name + ".tmp")
    shutil.copyfile(trained["weights"], tmp)
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    tmp.replace(path)
    return path


def _validate(model, data_yaml: str | Path, split: str, imgsz: int) -> dict:
    return val_yolo(model, data_yaml, split=split, imgsz=imgsz)


YOLO = register_localizer(LocalizerKind(
    name="yolo",
    description="YOLOv8-seg through ultralytics: instance masks, one confidence per region ([Petrželková 2024] §4.5)",
    archs=YOLO_ARCHS,
    suffix=".pt",
    load=_load_checkpoint,
    predict=lambda model, image, conf, imgsz: predict_yolo(model, image, conf=conf, imgsz=imgsz),
    train=_train,
    save=_save,
    default_name=lambda cfg: f"localizer-{cfg.arch}",
    curves=(("train/box_loss", "box loss", False), ("train/seg_loss", "mask loss", False),
            ("train/cls_loss", "class loss", False), ("metrics/mAP50(M)", "val mask mAP50", True),
            ("metrics/mAP50-95(M)", "val mask mAP50-95", True)),
    pickled=True,
    takes_weights=True,
    validate=_validate,
))
