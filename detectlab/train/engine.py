"""``train(config, progress, cancel)``: the one training function the CLI and the UI call.

[Wimmer 2024]: BCE loss, Adam (lr 1e-4, wd 1e-3), class-balanced weighted sampling, per-class and
balanced accuracy, mean ± std over repeated runs. [Petrželková 2024]: horizontal flip, 80/10/10 split,
best-validation checkpoint, degradation augmentation, FGSM adversarial training (§4.4.2).
[DFwF]: frozen backbone + linear head; backbone features are computed once per data set
and kept, so each later epoch costs only the head. With degradation augmentation, a fixed
number of augmented draws per image is computed once per run (``AUG_FEATURE_DRAWS``).

Adversarial training makes FGSM copies on the fly from the weights being trained (the usual
practice); [Petrželková 2024] §4.4.2 instead built them once from the already trained model.

Devices and ranks: ``cfg.device`` (``config.device``: auto, cpu, cuda) is where the detector trains,
with mixed precision (autocast + GradScaler) on CUDA only. Run by torchrun with several ranks
(``detectlab.train.distributed``), a network detector trains data-parallel: each rank takes its
share of every global batch of ``processes x batch_size``, DDP averages the gradients, and rank 0
alone validates, tests and writes; frozen-backbone heads and closed-form fits train on rank 0 alone
(their cost is the feature extraction, once per data set, which the cache keeps).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from detectlab import config as dl_config
from detectlab.data import DetectionDataset, discover, split, split_files, split_summary
from detectlab.data.torchdata import ImageFolderDataset
from detectlab.models import Detector, FrozenBackboneDetector, create_detector
from detectlab.models.checkpoint import load_checkpoint, save_checkpoint
from detectlab.progress import NEVER_CANCEL, CancelToken, Cancelled, Progress, null_progress
from detectlab.train import distributed
from detectlab.train.config import TrainConfig, TrainConfigError
from detectlab.train.distributed import SINGLE, CancelSync, Dist
from detectlab.train.layout import CHECKPOINT_NAME, RUN_ID, RunLayout, new_run_id

EpochCallback = Callable[[dict], None]


@dataclass
class RunResult:
    """The outcome of one training run."""

    run_id: str
    status: str                         # finished | cancelled
    history: list[dict]                 # one entry per epoch: train_loss, val_loss, val metrics
    best_epoch: int
    val: dict
    test: dict
    checkpoint: str | None
    seconds: float
    images_per_second: float           # training images per second of optimisation steps
    weights: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class TrainResult:
    runs: list[RunResult]
    summary: dict                       # mean ± std of test metrics over runs


def dataset_fingerprint(samples) -> str:
    """Hash of the file list and labels, stored with checkpoints to say what they saw."""
    h = hashlib.sha256()
    for s in samples:
        h.update(f"{s.path.name}|{s.generator}|{s.label}\n".encode())
    return h.hexdigest()[:16]


def load_images(samples, size: int, progress: Progress = null_progress, desc: str = "load images",
                cancel: CancelToken = NEVER_CANCEL) -> torch.Tensor:
    """Decode samples once into a uint8 tensor ``[N, 3, size, size]`` (a few hundred MB at most)."""
    dataset = ImageFolderDataset(samples, size)
    out = torch.empty((len(samples), 3, size, size), dtype=torch.uint8)
    for i in range(len(dataset)):
        cancel.check()
        out[i] = (dataset[i][0] * 255 + 0.5).clamp(0, 255).to(torch.uint8)
        if i % 16 == 0 or i == len(samples) - 1:  # the progress sink throttles what it writes
            progress(i + 1, len(samples), desc)
    return out


@torch.no_grad()
def predict_scores(detector: Detector, images: torch.Tensor, batch_size: int = 64, progress: Progress = null_progress,
                   desc: str = "score images", cancel: CancelToken = NEVER_CANCEL) -> torch.Tensor:
    """P(fake) for uint8 or float images ``[N, 3, S, S]``."""
    detector.eval()
    dev = _device_of(detector)
    out = []
    for lo in range(0, len(images), batch_size):
        cancel.check()
        x = images[lo : lo + batch_size].to(dev)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x
        out.append(torch.sigmoid(detector(x)).cpu())
        progress(min(lo + batch_size, len(images)), len(images), desc)
    return torch.cat(out) if out else torch.empty(0)


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters(), torch.empty(0)).device


class _Batches:
    """Draws training batches: class-balanced with replacement ([Wimmer 2024]) or shuffled epochs."""

    def __init__(self, samples, batch_size: int, weighted: bool, gen: torch.Generator) -> None:
        self.n, self.bs, self.weighted, self.gen = len(samples), batch_size, weighted, gen
        # 1 / count of the sample's class, in float32 as multinomial has always drawn from here
        self.weights = ImageFolderDataset(samples, 1).sample_weights().float()
        self._perm: list[int] = []

    def next(self) -> torch.Tensor:
        if self.weighted:
            return torch.multinomial(self.weights, self.bs, replacement=True, generator=self.gen)
        if len(self._perm) < self.bs:
            self._perm += torch.randperm(self.n, generator=self.gen).tolist()
        idx, self._perm = self._perm[: self.bs], self._perm[self.bs :]
        return torch.tensor(idx)


def _augmenter(cfg: TrainConfig):
    if not cfg.augment.enabled:
        return None
    from detectlab.degrade import RandomDegrade

    return RandomDegrade(cfg.augment)


def _metrics(labels, scores, generators) -> dict:
    from detectlab.eval import binary_metrics

    return binary_metrics(np.asarray(labels), np.asarray(scores), groups=list(generators)).to_dict()


def _feature_cache_key(detector: FrozenBackboneDetector, samples, size: int, flip: bool) -> str:
    """The shared feature cache's key (``data.featcache``): backbone and weights, every file's path, size and
    modification time (a data set re-derived under the same names is another set), input size and flip."""
    from detectlab.data import featcache

    return featcache.key(f"train:{detector.arch}|{detector.weights_info.source}", [s.path for s in samples],
                         size=size, flip=flip)


@torch.no_grad()
def cached_features(detector: FrozenBackboneDetector, samples, images: torch.Tensor, flip: bool = False,
                    progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
                    split_name: str = "", desc: str = "") -> torch.Tensor:
    """Backbone features of ``images`` (optionally h-flipped), computed once and kept on disk.

    ``split_name`` names the images in the progress stage ("extract backbone features of the val split");
    ``desc`` replaces that stage's text."""
    from detectlab.data import featcache

    cache_key = _feature_cache_key(detector, samples, images.shape[-1], flip)
    cached = featcache.load(cache_key, len(samples))
    if cached is not None:
        return cached
    detector.eval()
    dev = _device_of(detector)
    out = []
    for lo in range(0, len(images), 64):
        cancel.check()
        x = images[lo : lo + 64].to(dev).float() / 255.0
        out.append(detector.backbone_features(x.flip(-1) if flip else x).cpu())
        progress(min(lo + 64, len(images)), len(images), desc or "extract backbone features"
                 + (f" of the {split_name} split" if split_name else "") + (", flipped" if flip else ""))
    feats = torch.cat(out)
    featcache.save(cache_key, feats)
    return feats


def _init_checkpoint(name: str) -> Path:
    """The checkpoint ``init_from`` names: a shipped detector, or a run id in the default runs folder."""
    from detectlab.models.manifest import shipped_checkpoints, shipped_name

    shipped = shipped_checkpoints()
    text = shipped_name(name)
    if text in shipped:
        return shipped[text]
    path = RunLayout.default().saved_checkpoint(text) if RUN_ID.fullmatch(text) else None
    if path is None:
        raise TrainConfigError(f"init_from {name!r}: no shipped detector ({', '.join(shipped) or 'none'}) or run "
                               "with a checkpoint has that name")
    return path


def init_weights(detector: Detector, name: str) -> str:
    """Copy the weights of the detector ``name`` (shipped name or run id) into ``detector``: the same
    architecture and input size, or TrainConfigError. Returns a note for the run."""
    path = _init_checkpoint(name)
    try:
        source, _ = load_checkpoint(path)
    except Exception as exc:  # noqa: BLE001 - any failure to load is a bad setting, said in one line
        raise TrainConfigError(f"init_from {name!r}: {exc}") from None
    size = source.preprocess.input_size
    if source.arch != detector.arch or size != detector.preprocess.input_size:
        raise TrainConfigError(f"init_from {name!r} is {source.arch} at {size} px; this run trains "
                               f"{detector.arch} at {detector.preprocess.input_size} px")
    detector.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in source.state_dict().items()})
    if not isinstance(detector, FrozenBackboneDetector):
        # a frozen detector's source names its backbone weights, which a checkpoint's head is tied to
        detector.weights_info.source = f"initialised from {name} ({path.name})"
        detector.weights_info.loaded = True
    return f"weights initialised from {name}; use the split seed it was trained with, or its test images leak"


#: Degradation augmentation on a frozen backbone: the features of this many augmented draws of each
#: training image (flip and degradations drawn per draw) are computed once, and each step picks one
#: draw per image, so the backbone runs copies x N times per run instead of once per sample and step.
AUG_FEATURE_DRAWS = 6


@torch.no_grad()
def augmented_features(detector: FrozenBackboneDetector, images: torch.Tensor, augment, hflip: bool,
                       draws: int, gen: torch.Generator, progress: Progress = null_progress,
                       cancel: CancelToken = NEVER_CANCEL) -> torch.Tensor:
    """Backbone features of ``draws`` randomly flipped and degraded copies of ``images``: [draws, N, D]."""
    detector.eval()
    out = []
    for d in range(draws):
        feats = []
        for lo in range(0, len(images), 64):
            cancel.check()
            x = images[lo : lo + 64].float() / 255.0
            if hflip:
                flip = torch.rand(len(x), generator=gen) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            feats.append(detector.backbone_features(augment(x, generator=gen).to(_device_of(detector))).cpu())
            progress(d * len(images) + min(lo + 64, len(images)), draws * len(images),
                     f"extract backbone features of augmented copies (draw {d + 1}/{draws})")
        out.append(torch.cat(feats))
    return torch.stack(out)


@dataclass
class _RunSetup:
    """What one run trains: the detector, its inputs (decoded images or cached backbone features) and labels."""

    detector: Detector
    gen: torch.Generator
    notes: list[str]
    augment: object | None
    use_cache: bool                     # a frozen backbone whose features are computed once
    feats: dict
    y_train: torch.Tensor
    y_val: np.ndarray
    g_val: list
    device: torch.device = torch.device("cpu")
    dist: Dist = SINGLE
    model: torch.nn.Module | None = None   # what the steps call: the detector, or its DDP wrapper

    @property
    def frozen(self) -> bool:
        return isinstance(self.detector, FrozenBackboneDetector)


def _prepare_run(cfg: TrainConfig, parts: dict, images: dict, run_seed: int, progress: Progress,
                 cancel: CancelToken, dev: torch.device = torch.device("cpu"), d: Dist = SINGLE) -> _RunSetup:
    """Seed, build (and initialise) the detector on ``dev``; for a frozen backbone, compute or read its features.
    Every rank seeds alike: the same initial weights and the same global batches."""
    torch.manual_seed(run_seed)
    gen = torch.Generator().manual_seed(run_seed)
    detector = create_detector(cfg.arch, cfg.pretrained, cfg.input_size)
    notes = list(detector.weights_info.messages)
    if cfg.init_from:
        notes.append(init_weights(detector, cfg.init_from))
    if hasattr(detector, "fit"):
        dev = torch.device("cpu")  # a closed-form fit (numpy) stays on the CPU
    detector.to(dev)
    frozen = isinstance(detector, FrozenBackboneDetector)
    train_x, val_x = images["train"], images["val"]
    augment = _augmenter(cfg)
    use_cache = frozen and not cfg.adv_eps
    if frozen and not use_cache:
        notes.append("adversarial augmentation changes the input with the weights every step, so backbone "
                     "features cannot be cached: each step runs the frozen backbone")
    feats: dict = {}
    if use_cache:
        feats["val"] = cached_features(detector, parts["val"], val_x, False, progress, cancel, "val")
        if augment is not None:
            feats["train_aug"] = augmented_features(detector, train_x, augment, cfg.hflip, AUG_FEATURE_DRAWS, gen,
                                                    progress, cancel)
            notes.append(f"degradation augmentation on a frozen backbone: {AUG_FEATURE_DRAWS} augmented draws of "
                         "each training image, their features computed once; each step picks one")
        else:
            feats["train"] = cached_features(detector, parts["train"], train_x, False, progress, cancel, "train")
            if cfg.hflip:
                feats["train_flip"] = cached_features(detector, parts["train"], train_x, True, progress, cancel,
                                                      "train")
    if frozen and detector.standardized and not cfg.init_from:  # a started-from head keeps its statistics
        detector.fit_standardization(feats.get("train_aug", feats.get("train")) if use_cache else
                                     cached_features(detector, parts["train"], train_x, False, progress, cancel,
                                                     "train"))
    return _RunSetup(detector, gen, notes, augment, use_cache, feats,
                     torch.tensor([s.label for s in parts["train"]], dtype=torch.float32),
                     np.array([s.label for s in parts["val"]]), [s.generator for s in parts["val"]], dev, d)


def _fit_closed_form(cfg: TrainConfig, run: _RunSetup, train_x: torch.Tensor, epochs: int, progress: Progress) -> None:
    """Closed-form detectors (the spectrum baseline): one fit; with augmentation, each epoch adds one randomly
    post-processed copy of the train split to the fit."""
    progress(0, 1, f"fit {cfg.arch}")
    run.detector.fit(train_x, run.y_train.numpy(), augment=run.augment, copies=epochs, generator=run.gen,
                     balanced=cfg.weighted_sampling)


def _train_step(cfg: TrainConfig, run: _RunSetup, train_x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The logits of one batch ``idx``: from cached features (one draw or flip each) or from the images
    (flip, degradations and FGSM copies drawn here)."""
    detector, gen, feats, dev = run.detector, run.gen, run.feats, run.device
    if run.use_cache and "train_aug" in feats:
        f = feats["train_aug"][torch.randint(AUG_FEATURE_DRAWS, (len(idx),), generator=gen), idx]
        return detector.head_on_backbone(f.to(dev))
    if run.use_cache:
        flip = cfg.hflip & (torch.rand(len(idx), generator=gen) < 0.5)
        f = feats["train"][idx]
        if cfg.hflip:
            f = torch.where(flip[:, None], feats["train_flip"][idx], f)
        return detector.head_on_backbone(f.to(dev))
    # flips of the whole global batch, then this rank's share: N ranks draw what one process with N*B draws
    flip = torch.rand(len(idx), generator=gen) < 0.5 if cfg.hflip else None
    mine = run.dist.share(torch.arange(len(idx)))
    idx = idx[mine]
    x = train_x[idx].float() / 255.0
    if flip is not None:
        x = torch.where(flip[mine][:, None, None, None], x.flip(-1), x)
    if run.augment is not None:
        x = run.augment(x, generator=gen)  # on the CPU: the degradations draw from a CPU generator
    x = x.to(dev)
    if cfg.adv_eps:
        from detectlab.attacks import fgsm_batch_for_training

        k = int(round(cfg.adv_fraction * len(idx)))
        if k:
            x = x.clone()
            x[:k] = fgsm_batch_for_training(detector, x[:k], run.y_train[idx][:k].to(dev), cfg.adv_eps, gen)
            detector.train()
    return (run.model or detector)(x)


@torch.no_grad()
def _validate(run: _RunSetup, val_x: torch.Tensor, cancel: CancelToken, progress: Progress = null_progress,
              desc: str = "validate") -> tuple[torch.Tensor, np.ndarray]:
    run.detector.eval()
    n, dev = len(run.y_val), run.device
    if run.use_cache:
        vlogits = torch.cat([run.detector.head_on_backbone(run.feats["val"][lo : lo + 256].to(dev)).cpu()
                             for lo in range(0, n, 256)])
    else:
        chunks = []
        for lo in range(0, n, 64):
            cancel.check()
            chunks.append(run.detector(val_x[lo : lo + 64].to(dev).float() / 255.0).float().cpu())
            progress(min(lo + 64, n), n, desc)
        vlogits = torch.cat(chunks)
    cancel.check()  # a cancel while validating ends the epoch here, unrecorded
    return vlogits, torch.sigmoid(vlogits).numpy()


@dataclass
class _Loop:
    """Where the epoch loop stands: its history, the best state so far and the step counters."""

    history: list[dict] = field(default_factory=list)
    best_state: dict | None = None
    best_score: float = -1.0
    best_epoch: int = 0
    step: int = 0
    seen: int = 0
    step_seconds: float = 0.0
    status: str = "finished"


def _epoch_loop(cfg: TrainConfig, run: _RunSetup, parts: dict, images: dict, total_steps: int, epochs: int,
                save_best: Callable[[dict, int], None], progress: Progress, cancel: CancelToken,
                on_epoch: EpochCallback | None, on_step: EpochCallback | None, start: float) -> _Loop:
    """Train ``total_steps`` steps in ``epochs`` epochs, validating after each and keeping the best epoch
    (balanced validation accuracy) on disk at once; a cancel ends the loop with what it has.

    On several ranks (``run.dist``) a step is one global batch of ``processes x batch_size``, shared out;
    rank 0 alone validates and saves; ``cancel`` (a ``CancelSync``) is agreed on at every step."""
    detector, frozen, d, dev = run.detector, run.frozen, run.dist, run.device
    sync = cancel if isinstance(cancel, CancelSync) else CancelSync(cancel, SINGLE)
    global_batch = cfg.batch_size * d.world
    steps_per_epoch = max(1, math.ceil(len(parts["train"]) / global_batch))
    batches = _Batches(parts["train"], global_batch, cfg.weighted_sampling, run.gen)
    amp = dev.type == "cuda"  # mixed precision where it pays: on a GPU
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    loop = _Loop()
    try:
        sync.agree()  # every rank is here (or one has stopped) before DDP's own collectives begin
        run.model = distributed.wrap(detector, d, dev)
        opt = torch.optim.Adam(detector.trainable_parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        for epoch in range(1, epochs + 1):
            run.model.train()
            losses = []
            steps_this_epoch = max(1, min(steps_per_epoch, total_steps - loop.step))
            for _ in range(min(steps_per_epoch, total_steps - loop.step)):
                sync.agree()
                t_step = time.perf_counter()
                idx = batches.next()
                with torch.autocast(dev.type, enabled=amp):
                    logits = _train_step(cfg, run, images["train"], idx)
                loss = F.binary_cross_entropy_with_logits(logits.float(), run.y_train[d.share(idx)].to(dev))
                sync.check()  # a step can take seconds on a busy CPU: look again between its halves
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                sync.check()
                scaler.step(opt)
                scaler.update()
                losses.append(distributed.mean(loss, d))  # the global batch's loss, as one process has it
                loop.step_seconds += time.perf_counter() - t_step
                loop.step += 1
                loop.seen += len(idx)
                if on_step:
                    on_step({"step": loop.step, "epoch": epoch - 1 + len(losses) / steps_this_epoch, "loss": losses[-1]})
                progress(loop.step, total_steps, f"train {cfg.arch} (epoch {epoch}/{epochs})")
            if not d.main:
                continue  # rank 0 validates; the others wait for it at the next step's agreement
            vlogits, vscores = _validate(run, images["val"], sync.token, progress, f"validate (epoch {epoch}/{epochs})")
            vloss = float(F.binary_cross_entropy_with_logits(vlogits, torch.tensor(run.y_val, dtype=torch.float32)))
            vm = _metrics(run.y_val, vscores, run.g_val)
            entry = {"epoch": epoch, "step": loop.step, "train_loss": float(np.mean(losses)) if losses else None,
                     "val_loss": vloss, "val_accuracy": vm["accuracy"], "val_balanced_accuracy": vm["balanced_accuracy"],
                     "val_ap": vm["ap"], "seconds": round(time.perf_counter() - start, 2)}
            loop.history.append(entry)
            score = vm["balanced_accuracy"] if vm["balanced_accuracy"] is not None else -vloss
            if not cfg.select_best or score >= loop.best_score:
                loop.best_score, loop.best_epoch = score, epoch
                # frozen backbones never change: keep only what training moves
                loop.best_state = {k: v.detach().clone() for k, v in detector.state_dict().items()
                                   if not (frozen and k.startswith("backbones."))}
                save_best(entry, epoch)  # on disk at once: a worker that dies later still leaves its best model
            if on_epoch:
                on_epoch(dict(entry))
    except Cancelled:
        loop.status = "cancelled"
    return loop


def _run_once(cfg: TrainConfig, ds: DetectionDataset, parts: dict, images: dict, run_seed: int, run_dir: Path,
              progress: Progress, cancel: CancelToken, on_epoch: EpochCallback | None,
              on_step: EpochCallback | None = None, dev: torch.device = torch.device("cpu"),
              d: Dist = SINGLE) -> RunResult:
    """One run: prepare, fit (closed form) or train epochs, then test the best epoch and save it (rank 0 alone
    writes; ``cancel`` is the ranks' ``CancelSync``, rank 0's own token inside it)."""
    start = time.perf_counter()
    own = cancel.token if isinstance(cancel, CancelSync) else cancel
    try:
        run = _prepare_run(cfg, parts, images, run_seed, progress, own, dev, d)
    except Cancelled:
        return RunResult(run_dir.name, "cancelled", [], 0, {}, {}, None, time.perf_counter() - start, 0.0, "",
                         ["cancelled while preparing the run (before the first step)"])
    detector = run.detector
    steps_per_epoch = max(1, math.ceil(len(parts["train"]) / (cfg.batch_size * d.world)))
    total_steps = cfg.iterations or cfg.epochs * steps_per_epoch
    epochs = math.ceil(total_steps / steps_per_epoch)
    if hasattr(detector, "fit"):
        _fit_closed_form(cfg, run, images["train"], epochs, progress)
        total_steps, epochs = 0, 1
    # a mirror-model half says which part it saw and how many samples that is
    part = {"train_part": {"part": cfg.train_part, "samples": len(parts["train"])}} if cfg.part else {}
    if d.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "splits.json").write_text(json.dumps(split_files(parts, ds.root) | part))
    base_meta = {
        "training": cfg.to_dict() | {"seed": run_seed},
        "data": {"root": str(ds.root), "layout": ds.layout, "generators": cfg.generators or ds.generators,
                 "fingerprint": dataset_fingerprint(ds.samples), "splits": split_summary(parts)} | part,
        "hardware": hardware(run.device, d),
        "threshold": 0.5,
    }

    def save_best(entry: dict, epoch: int) -> None:
        if d.main:
            save_checkpoint(detector, run_dir / CHECKPOINT_NAME,
                            base_meta | {"metrics": {"val": entry, "best_epoch": epoch, "status": "running"}})

    start = time.perf_counter()
    loop = _epoch_loop(cfg, run, parts, images, total_steps, epochs, save_best, progress, cancel, on_epoch, on_step,
                       start)
    seconds = time.perf_counter() - start
    speed = loop.seen / max(loop.step_seconds, 1e-9)
    if loop.best_state is None:  # cancelled before the first validation (or not rank 0): nothing to keep
        return RunResult(run_dir.name, loop.status, loop.history, 0, {}, {}, None, seconds, speed,
                         detector.weights_info.source, run.notes)
    return _evaluate_and_save(cfg, run, parts, images, loop, base_meta, run_dir, seconds, speed, progress, own)


def hardware(dev: torch.device, d: Dist = SINGLE) -> dict:
    """Where a run trained, for its checkpoint and history: device, processes, DDP backend, mixed precision."""
    out = {"device": str(dev), "processes": d.world, "amp": dev.type == "cuda"}
    if d.active:
        out["backend"] = "nccl" if dev.type == "cuda" else "gloo"
    return out


def fit_network(cfg: TrainConfig, parts: dict, images: dict, seed: int, progress: Progress = null_progress,
                cancel: CancelToken = NEVER_CANCEL) -> tuple[Detector, list[dict]]:
    """Train one detector in memory, as a run trains it, on ``parts["train"]`` (samples with ``label`` and
    ``generator``) and ``images["train"]`` (uint8 ``[N, 3, S, S]``), validating on ``parts["val"]`` /
    ``images["val"]`` after each epoch. Returns the best-validation detector (eval mode) and the epoch
    history; writes nothing. For experiments that train many detectors on subsets of one decoded set.

    Raises:
        Cancelled: ``cancel`` was set.
        ValueError: the train or validation samples hold one class only.
    """
    for name in ("train", "val"):
        if {s.label for s in parts[name]} != {0, 1}:
            raise ValueError(f"the {name} samples need real and fake images; got {len(parts[name])} of one class")
    torch.set_num_threads(max(1, cfg.threads))
    run = _prepare_run(cfg, parts, images, seed, progress, cancel)
    steps_per_epoch = max(1, math.ceil(len(parts["train"]) / cfg.batch_size))
    total_steps = cfg.iterations or cfg.epochs * steps_per_epoch
    if hasattr(run.detector, "fit"):
        _fit_closed_form(cfg, run, images["train"], 1, progress)
        return run.detector.eval(), []
    loop = _epoch_loop(cfg, run, parts, images, total_steps, math.ceil(total_steps / steps_per_epoch),
                       lambda entry, epoch: None, progress, cancel, None, None, time.perf_counter())
    if loop.status == "cancelled" or loop.best_state is None:
        raise Cancelled()
    run.detector.load_state_dict(loop.best_state, strict=not run.frozen)
    return run.detector.eval(), loop.history


#: The stage that scores a finished run's test split (its phase in the progress line).
TEST_STAGE = "score the test split"


def _evaluate_and_save(cfg: TrainConfig, run: _RunSetup, parts: dict, images: dict, loop: _Loop, base_meta: dict,
                       run_dir: Path, seconds: float, speed: float, progress: Progress,
                       cancel: CancelToken = NEVER_CANCEL) -> RunResult:
    """The best epoch's weights back in, scored on the test split, saved with every number.

    A cancelled run (before or during the scoring) keeps its best epoch, saved without test
    numbers: cancel stops the work within seconds rather than scoring the test split first."""
    detector = run.detector
    detector.load_state_dict(loop.best_state, strict=not run.frozen)
    status, test, notes = loop.status, {}, list(run.notes)
    if status != "cancelled":
        try:
            test_scores = _scores(detector, images["test"], run.use_cache, parts["test"], progress, cancel)
            test = _metrics([s.label for s in parts["test"]], test_scores, [s.generator for s in parts["test"]])
        except Cancelled:
            status = "cancelled"
    if status == "cancelled":
        notes.append(f"cancelled: the best epoch ({loop.best_epoch}) is kept, its test split not scored")
    val = next(h for h in loop.history if h["epoch"] == loop.best_epoch)
    metrics = {"val": val, "best_epoch": loop.best_epoch, "status": status} | ({"test": test} if test else {})
    ckpt = run_dir / CHECKPOINT_NAME
    save_checkpoint(detector, ckpt, base_meta | {"metrics": metrics})
    return RunResult(run_dir.name, status, loop.history, loop.best_epoch, val, test, str(ckpt), seconds, speed,
                     detector.weights_info.source, notes)


def _scores(detector, images, use_cache, samples, progress, cancel: CancelToken = NEVER_CANCEL) -> np.ndarray:
    if use_cache:
        feats = cached_features(detector, samples, images, False, progress, cancel, "test",
                                f"{TEST_STAGE} (backbone features)")
        with torch.no_grad():
            detector.eval()
            return torch.sigmoid(detector.head_on_backbone(feats.to(_device_of(detector))).cpu()).numpy()
    return predict_scores(detector, images, progress=progress, desc=TEST_STAGE, cancel=cancel).numpy()


def split_parts(samples, n: int, seed: int = 0) -> list[list]:
    """``samples`` in ``n`` disjoint parts that together hold them all ([Petrželková 2024] Table 4.5's mirror models).

    Whole groups move (an image and the fakes made from it stay in one part, as in ``split``),
    stratified by class and generator: within each stratum the groups are shuffled with
    ``seed`` and each goes to the part that has the fewest samples of that stratum so far, so
    every part gets about 1/n of each class and generator. Deterministic; independent of the
    order of ``samples``; within a part, samples keep their input order.
    """
    members: dict = defaultdict(list)
    for i, s in enumerate(samples):
        members[s.group].append(i)
    strata: dict = defaultdict(list)
    for key, idx in members.items():
        strata[tuple(sorted({(samples[i].label, str(samples[i].generator)) for i in idx}))].append(key)
    rng = np.random.default_rng([seed, n])
    part_of: dict = {}
    for stratum in sorted(strata):
        keys = sorted(strata[stratum], key=str)
        load = [0] * n
        for k in rng.permutation(len(keys)):
            target = min(range(n), key=lambda p: (load[p], p))
            part_of[keys[k]] = target
            load[target] += len(members[keys[k]])
    out: list[list] = [[] for _ in range(n)]
    for s in samples:
        out[part_of[s.group]].append(s)
    return out


def prepare_data(cfg: TrainConfig, progress: Progress = null_progress,
                 cancel: CancelToken = NEVER_CANCEL) -> tuple[DetectionDataset, dict, dict]:
    """Discover, restrict to the chosen generators, split and decode the data of a run.

    With ``cfg.train_part`` ("k/n") only part k of ``split_parts(train, n, split_seed)`` is
    trained on; the validation and test splits stay the whole data set's.
    """
    ds = discover(cfg.data, progress=progress)
    if not isinstance(ds, DetectionDataset):
        raise ValueError(f"{cfg.data}: training needs a real/fake data set, not {ds.layout}")
    if cfg.generators:
        missing = sorted(set(cfg.generators) - set(ds.generators))
        if missing:
            raise ValueError(f"generators {missing} are not in {ds.root} (it has {ds.generators})")
        ds = ds.subset(cfg.generators)
    parts = split(ds.samples, seed=cfg.split_seed, fractions=cfg.split_fractions)
    if cfg.part:
        k, n = cfg.part
        parts["train"] = split_parts(parts["train"], n, cfg.split_seed)[k - 1]
    for name in ("train", "val"):
        labels = {s.label for s in parts[name]}
        if labels != {0, 1}:
            what = f"part {cfg.train_part} of the train split" if name == "train" and cfg.part else f"the {name} split"
            raise ValueError(f"{what} of {ds.root} lacks a class (has {sorted(labels)}); add images")
    images = {k: load_images(parts[k], cfg.input_size, progress, f"decode {k} images", cancel)
              for k in ("train", "val", "test")}
    return ds, parts, images


def train(cfg: TrainConfig, progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
          on_epoch: EpochCallback | None = None, run_id: str | None = None,
          on_step: EpochCallback | None = None) -> TrainResult:
    """Train ``cfg.runs`` detectors (seeds seed, seed+1, ...); return their results and mean ± std.

    ``on_epoch`` gets each epoch's row (losses, validation metrics); ``on_step`` each training
    step's ``{"step", "epoch" (fractional), "loss"}`` for live curves.

    In a torchrun worker (a process group is up, ``distributed.init``) every rank calls this with the
    same ``cfg``: a network detector trains data-parallel, anything else on rank 0 alone (the other
    ranks return at once with no runs); only rank 0's ``cancel`` is read, and only rank 0 writes.
    """
    from detectlab.eval import mean_std

    torch.set_num_threads(max(1, cfg.threads))
    d = distributed.current()
    if d.active and not distributed.network_arch(cfg.arch):
        if not d.main:
            return TrainResult([], {})
        d = SINGLE  # a frozen head or a closed-form fit: rank 0 trains it alone, with no collective
    dev = distributed.rank_device(cfg.device, d.local_rank)
    sync = CancelSync(cancel, d, dev)
    layout = RunLayout.of(cfg.out_dir)
    run_id = run_id or new_run_id()
    try:
        ds, parts, images = prepare_data(cfg, progress, cancel)
    except Cancelled:  # a cancel while decoding ends the run "cancelled", with nothing to keep
        sync.tell()
        return TrainResult([RunResult(run_id, "cancelled", [], 0, {}, {}, None, 0.0, 0.0, "",
                                      ["cancelled while decoding the data (before the first step)"])], {})
    results = []
    for k in range(cfg.runs):
        run_dir = layout.repeat_dir(run_id, k, cfg.runs)
        res = _run_once(cfg, ds, parts, images, cfg.seed + k, run_dir, progress, sync, on_epoch,
                        on_step if k == 0 else None, dev, d)
        res.notes.append(f"trained on {dev}" + (f", {d.world} processes (DDP, {hardware(dev, d)['backend']}): "
                                                 f"global batch {d.world} x {cfg.batch_size}" if d.active else "")
                         + (", mixed precision" if dev.type == "cuda" else ""))
        results.append(res)
        if res.status == "cancelled":
            break
    try:  # rank 0 ends (its test split scored, or stopped) where the other ranks wait: no collective is left open
        sync.tell() if results[-1].status == "cancelled" else sync.agree()
    except Cancelled:
        pass  # a cancel after the last step: the runs are complete
    tests = [r.test for r in results if r.test]
    return TrainResult(results, mean_std(tests) if tests else {})
