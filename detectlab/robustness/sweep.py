"""Accuracy against degradation strength on a labelled set ([Petrželková 2024] §4.3, Figs 4.4, 4.6, 4.8, 4.10).

A sweep scores every image of a labelled split with every detector at every strength of one
degradation (or of one step of a chain, the other steps fixed), and reports accuracy,
balanced accuracy and AP per strength. [Petrželková 2024] repeats each training ten times and plots
mean ± std as error bars: a ``DetectorGroup`` of repeated runs (same training config,
different seeds) gives the same here.

Order of operations, as in the paper (degradations act on the detector's input, 224 px faces
there): decode → resize + centre-crop to the detector's input size → chain → detector. Each
image is decoded once per input size, not once per strength, and every strength is applied
to a whole batch at once (the blur is one batched convolution; only JPEG needs a per-image
encoder call); detectors sharing an input size share the degraded batch. Files are decoded by a
DataLoader's worker processes (``data.torchdata.fitted_batches``), a batch ahead of the scoring.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from detectlab.data import SPLIT_NAMES, DetectionDataset, PathList, Sample, discover, resize_center_crop, split
from detectlab.data.splits import probe_for_split
from detectlab.data.torchdata import fitted_batches
from detectlab.degrade import Chain, DegradationError, Step, get_degradation, parse_number, parse_step
from detectlab.degrade.chain import STEP_SEPARATOR
from detectlab.errors import DatasetError, DetectLabError
from detectlab.models.manifest import shipped_name
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress

#: The placeholder for the varying step in a sweep's chain text: ``"downsize 0.5 → *"``.
SLOT = "*"
#: Split choices of a sweep: the data layer's splits, or every image.
SPLITS = (*SPLIT_NAMES, "all")
#: The metrics a sweep reports per strength.
METRICS = ("accuracy", "balanced_accuracy", "ap")

#: [Petrželková 2024]'s strengths (blur σ to 21 px on 224 px faces, JPEG to quality 10), scaled to a
#: 128 px input where a size is involved; what the tab and the CLI start from.
DEFAULT_LEVELS: dict[str, tuple] = {
    "blur": (0, 0.5, 1, 2, 3, 5, 10),
    "jpeg": (100, 90, 70, 50, 30, 10),
    "downsize": (1, 0.75, 0.5, 0.35, 0.25, 0.15),
    "patch": (128, 96, 64, 48, 32, 24, 16),
    "noise": (0, 0.01, 0.02, 0.05, 0.1, 0.2),
    "resize": (1, 0.75, 0.5, 0.35, 0.25, 0.15),
}


class ScoredDetector(Protocol):
    """What a sweep needs of a detector (``detectlab.catalog.LoadedDetector`` is one)."""

    name: str
    detector: Any   # detectlab.models.Detector: [B, 3, S, S] in [0, 1] -> one logit
    meta: dict

    @property
    def threshold(self) -> float: ...


# -- what to sweep --------------------------------------------------------------------------
def parse_levels(text: str | Sequence, degradation: str) -> tuple:
    """Strengths from ``"100,90,70"`` (or a sequence), each checked against ``degradation``'s range.

    Raises:
        DegradationError: an empty list, a token that is not a number, or a strength out of range;
            the message names the token.
    """
    op = get_degradation(degradation)
    if isinstance(text, str):
        tokens = [t.strip() for t in text.replace(";", ",").replace(" ", ",").split(",") if t.strip()]
        if not tokens:
            raise DegradationError(f"levels: none given for {degradation} (e.g. {_fmt_levels(DEFAULT_LEVELS[degradation])})")
        values = [None if t.lower() in ("off", "none") else parse_number(t, "levels") for t in tokens]
    else:
        values = list(text)
        if not values:
            raise DegradationError(f"levels: none given for {degradation}")
    out = []
    for v in values:
        try:
            out.append(op.check_strength(v))
        except DegradationError as exc:
            raise DegradationError(f"levels: {v!r} is not a valid {degradation} strength ({exc})") from None
    return tuple(out)


def _fmt_levels(levels: Sequence) -> str:
    return ",".join("off" if v is None else format(v, "g") for v in levels)


@dataclass(frozen=True)
class SweepSpec:
    """One degradation at several strengths, optionally inside a fixed chain.

    ``template`` is the chain with ``None`` where the varying degradation goes. Build it with
    ``SweepSpec.make``, which validates everything and names the bad value.
    """

    degradation: str
    levels: tuple
    template: tuple[Step | None, ...] = (None,)
    seed: int = 0

    @classmethod
    def make(cls, degradation: str, levels: str | Sequence | None = None, chain: str = SLOT,
             seed: int = 0) -> SweepSpec:
        """Validated spec; ``levels`` default to ``DEFAULT_LEVELS``; ``chain`` like ``"downsize 0.5 → *"``."""
        name = str(degradation).strip().lower()
        get_degradation(name)
        lv = parse_levels(DEFAULT_LEVELS[name] if levels is None else levels, name)
        text = (chain or "").strip() or SLOT
        parts = [p for p in STEP_SEPARATOR.split(text) if p]
        template = tuple(None if p.strip() == SLOT else parse_step(p) for p in parts)
        if sum(t is None for t in template) != 1:
            raise DegradationError(f"chain {text!r} must hold the varying step exactly once, written {SLOT} "
                                   f"(e.g. 'downsize 0.5 → {SLOT}')")
        Chain(t for t in template if t is not None)  # validates the fixed steps
        return cls(name, lv, template, int(seed))

    def chain_at(self, level: Any) -> Chain:
        """The chain with the varying step at ``level``."""
        return Chain(Step(self.degradation, level) if t is None else t for t in self.template)

    @property
    def strength_name(self) -> str:
        return get_degradation(self.degradation).strength_name

    @property
    def label(self) -> str:
        """``"jpeg quality"`` or ``"downsize 0.5 → jpeg quality"``: the x axis of a sweep plot."""
        return " → ".join(f"{self.degradation} {self.strength_name}" if t is None else str(t) for t in self.template)

    def to_dict(self) -> dict:
        return {"degradation": self.degradation, "levels": list(self.levels), "seed": self.seed,
                "chain": " → ".join(SLOT if t is None else str(t) for t in self.template)}


# -- who is swept ----------------------------------------------------------------------------
_NOT_REPEAT = ("seed", "name", "out_dir", "runs", "data", "threads")


def repeat_key(meta: dict) -> str | None:
    """What repeated runs share: the training config without seed, name and paths (None if unknown)."""
    cfg = meta.get("training")
    if not isinstance(cfg, dict):
        return None
    data = (meta.get("data") or {}).get("fingerprint")
    return json.dumps({"config": {k: v for k, v in cfg.items() if k not in _NOT_REPEAT}, "data": data},
                      sort_keys=True, default=str)


@dataclass
class DetectorGroup:
    """One line of a sweep plot: one detector, or repeated runs of one training config (mean ± std)."""

    name: str
    members: list = field(default_factory=list)   # ScoredDetector

    @property
    def runs(self) -> int:
        return len(self.members)


def group_detectors(detectors: Sequence[ScoredDetector], repeat_group: bool = False) -> list[DetectorGroup]:
    """One group per detector; with ``repeat_group``, runs of the same training config form one group.

    [Petrželková 2024] §4.3 trains each configuration ten times and reports mean ± std; here "the same
    configuration" is the checkpoint's training config and data fingerprint minus the seed.
    """
    groups: dict[Any, DetectorGroup] = {}
    for k, d in enumerate(detectors):
        key = repeat_key(d.meta) if repeat_group else None
        key = key if key is not None else ("single", k)
        if key not in groups:
            groups[key] = DetectorGroup(shipped_name(d.name), [])
        groups[key].members.append(d)
    out = list(groups.values())
    for g in out:
        if g.runs > 1:
            g.name = f"{g.name} (×{g.runs} runs)"
    return out


# -- the labelled images ----------------------------------------------------------------------
def sweep_samples(root: str | Path, split_name: str = "test", split_seed: int = 0,
                  progress: Progress = null_progress) -> tuple[list[Sample], list[tuple[Path, str]]]:
    """The labelled samples of one split of ``root`` (``"all"`` = every image) and the skipped files.

    Raises:
        DatasetError: not a real/fake layout, an unknown split, an empty split, or a split
            with one class only (accuracy against strength needs both); the message names it.
    """
    if split_name not in SPLITS:
        raise DatasetError(f"unknown split {split_name!r}; choose one of {', '.join(SPLITS)}")
    ds = discover(root, validate=probe_for_split(split_name), progress=progress)
    if not isinstance(ds, DetectionDataset):
        raise DatasetError(f"{root}: a sweep needs real and fake images, not a {ds.layout} set")
    samples = ds.samples if split_name == "all" else split(ds.samples, seed=split_seed)[split_name]
    where = f"{root}" + ("" if split_name == "all" else f" ({split_name} split, seed {split_seed})")
    if not samples:
        raise DatasetError(f"{where}: no images to sweep")
    n_fake = sum(s.label for s in samples)
    if n_fake in (0, len(samples)):
        only = "real" if n_fake == 0 else "fake"
        raise DatasetError(f"{where}: only {only} images ({len(samples)}); a sweep needs both real and fake "
                           "images to measure accuracy")
    return samples, list(ds.skipped)


# -- results ---------------------------------------------------------------------------------
@dataclass
class SweepPoint:
    """Metrics of one detector (one run of a group) at one strength."""

    group: str
    member: str
    level: Any
    n: int
    accuracy: float
    balanced_accuracy: float | None
    ap: float | None
    real_accuracy: float | None
    fake_accuracy: float | None


@dataclass
class SweepResult:
    """All metrics of a sweep, per run and aggregated per group (mean ± std over runs)."""

    spec: SweepSpec
    groups: list[str]
    points: list[SweepPoint]
    n_images: int
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (file, reason)
    data: str = ""
    seconds: float = 0.0

    def summary(self) -> list[dict]:
        """One row per (group, strength): ``runs``, ``<metric>_mean`` and ``<metric>_std`` (0 for one run)."""
        rows = []
        for g in self.groups:
            for level in self.spec.levels:
                pts = [p for p in self.points if p.group == g and p.level == level]
                row = {"detector": g, "runs": len(pts), self.spec.strength_name: level, "n_images": pts[0].n}
                for m in METRICS:
                    vals = [getattr(p, m) for p in pts if getattr(p, m) is not None]
                    row[f"{m}_mean"] = float(np.mean(vals)) if vals else None
                    row[f"{m}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0 if vals else None
                rows.append(row)
        return rows

    def curve(self, group: str, metric: str = "accuracy") -> tuple[list, list, list]:
        """``(levels, means, stds)`` of one group: one line of the plot."""
        rows = [r for r in self.summary() if r["detector"] == group]
        return ([r[self.spec.strength_name] for r in rows], [r[f"{metric}_mean"] for r in rows],
                [r[f"{metric}_std"] for r in rows])

    def write_csv(self, path: str | Path) -> Path:
        """The summary table as CSV (one row per detector and strength)."""
        from detectlab.eval.tables import write_rows_csv

        return write_rows_csv(self.summary(), path, float_format=".6f", exact=[self.spec.strength_name])

    def to_dict(self) -> dict:
        return {"spec": self.spec.to_dict(), "data": self.data, "n_images": self.n_images,
                "seconds": round(self.seconds, 2), "summary": self.summary(),
                "points": [asdict(p) for p in self.points], "skipped": [list(s) for s in self.skipped]}

    def write_json(self, path: str | Path) -> Path:
        """Every number (``to_dict``) as JSON."""
        import json

        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1, default=str))
        return path


# -- the sweep -------------------------------------------------------------------------------
def _input_size(d: ScoredDetector) -> int:
    return int(d.detector.preprocess.input_size)


@torch.no_grad()
def run_sweep(groups: Sequence[DetectorGroup], samples: Sequence[Sample], spec: SweepSpec, *,
              batch_size: int = 64, data: str = "", progress: Progress = null_progress,
              cancel: CancelToken = NEVER_CANCEL) -> SweepResult:
    """Score ``samples`` with every detector of ``groups`` at every strength of ``spec``.

    Images are decoded once per batch and input size; each strength's chain runs on the whole
    batch with a generator seeded from ``(spec.seed, strength index, batch start)``, so a
    sweep is reproducible and every detector sees exactly the same degraded images. A chain
    that changes the size (``resize``) is followed by the detector's own resize + centre-crop.
    Unreadable files are skipped and listed. Progress counts image × strength; the cancel
    token is checked between batches of work.

    Returns:
        ``SweepResult`` with one ``SweepPoint`` per run and strength.
    """
    if not groups or not any(g.members for g in groups):
        raise DetectLabError("no detector selected for the sweep")
    start = time.perf_counter()
    members = [(g.name, m) for g in groups for m in g.members]
    for _, m in members:
        m.detector.eval()
    sizes = sorted({_input_size(m) for _, m in members})
    chains = [spec.chain_at(level) for level in spec.levels]
    n, n_levels = len(samples), len(spec.levels)
    scores = np.full((len(members), n_levels, n), np.nan)
    readable = np.zeros(n, dtype=bool)
    skipped: dict[str, str] = {}
    total, done = n * n_levels, 0
    progress(0, total, "sweep")
    # One DataLoader per input size, read in step: worker processes decode the next batch while this one is
    # degraded and scored, and nothing outlives its batch, so memory is flat in the number of images.
    files = PathList([s.file for s in samples])
    streams = [fitted_batches(files, size, batch_size) for size in sizes]
    for batches in zip(*streams):
        lo, width = batches[0].positions[0], len(batches[0].positions)
        for size, b in zip(sizes, batches):
            cancel.check()
            skipped.update((files.names[i], reason) for i, reason in b.errors.items())
            if b.images is None:
                continue
            x, idx = b.images, np.asarray(b.ok)
            readable[idx] = True
            for li, chain in enumerate(chains):
                cancel.check()
                xd = chain(x, generator=torch.Generator().manual_seed(_seed(spec.seed, li, lo)))
                for mi, (_, m) in enumerate(members):
                    if _input_size(m) != size:
                        continue
                    xin = xd if xd.shape[-2:] == (size, size) else resize_center_crop(xd, size)
                    scores[mi, li, idx] = torch.sigmoid(m.detector(xin).float()).numpy()
                if size == sizes[0]:
                    done += width
                    progress(done, total, f"sweep {spec.degradation}")
    if not readable.any():
        raise DatasetError(f"none of the {n} images could be read (first: {next(iter(skipped.items()), ('', ''))[1]})")
    points = _points(members, samples, spec, scores, readable)
    return SweepResult(spec, [g.name for g in groups], points, int(readable.sum()),
                       sorted(skipped.items()), data, time.perf_counter() - start)


def _seed(seed: int, level_index: int, batch_start: int) -> int:
    return (seed * 1_000_003 + level_index * 10_007 + batch_start) % (2**63)


def _points(members, samples, spec: SweepSpec, scores: np.ndarray, readable: np.ndarray) -> list[SweepPoint]:
    from detectlab.eval import binary_metrics

    labels = np.array([s.label for s in samples])[readable]
    groups = [s.generator for s in samples]
    groups = [g for g, ok in zip(groups, readable) if ok]
    points = []
    for mi, (gname, m) in enumerate(members):
        for li, level in enumerate(spec.levels):
            met = binary_metrics(labels, scores[mi, li][readable], threshold=m.threshold, groups=groups)
            points.append(SweepPoint(gname, shipped_name(m.name), level, met.n, met.accuracy, met.balanced_accuracy, met.ap,
                                     met.real_accuracy, met.fake_accuracy))
    return points


def augmentation_of(meta: dict) -> dict | None:
    """The degradation augmentation a checkpoint was trained with (None when it had none)."""
    aug = (meta.get("training") or {}).get("augment") or {}
    on = {k[:-2]: v for k, v in aug.items() if k.endswith("_p") and v}
    return on or None


def augmented_groups(groups: Sequence[DetectorGroup]) -> dict[str, bool]:
    """Group name -> trained with degradation augmentation (what ``robustness_reading`` compares)."""
    return {g.name: augmentation_of(g.members[0].meta) is not None for g in groups}


def robustness_reading(result: SweepResult, augmented: dict[str, bool]) -> list[str]:
    """What the curves say, in numbers, and whether augmentation lifts robustness ([Petrželková 2024] §4.3).

    Per group: accuracy and balanced accuracy at the first and the last strength. The comparison
    of augmented against plain groups uses the balanced accuracy averaged over the degraded
    strengths (all but the first, which is the clean or mildest setting): [Petrželková 2024] tests on a
    50/50 real/fake set, where accuracy and balanced accuracy coincide, whereas a set with
    more fakes rewards a detector that calls everything fake with plain accuracy. Nothing here
    is tuned to agree with the paper.

    Args:
        augmented: group name -> trained with degradation augmentation (``augmented_groups``).
    """
    key = result.spec.strength_name
    lines = []
    degraded: dict[str, float] = {}
    curves = {}
    for g in result.groups:
        levels, acc, _ = result.curve(g)
        _, bal, _ = result.curve(g, "balanced_accuracy")
        bal = [b if b is not None else a for a, b in zip(acc, bal)]
        curves[g] = bal[1:] or bal
        degraded[g] = float(np.mean(curves[g]))
        lines.append(f"{g}: accuracy {acc[0]:.3f} → {acc[-1]:.3f}, balanced accuracy {bal[0]:.3f} → {bal[-1]:.3f} "
                     f"from {key} {_fmt_levels(levels[:1])} to {_fmt_levels(levels[-1:])}; mean balanced accuracy "
                     f"over the degraded strengths {degraded[g]:.3f}")
    aug = [g for g in result.groups if augmented.get(g)]
    plain = [g for g in result.groups if g in augmented and not augmented[g]]
    for a in aug:
        for p in plain:
            diff = degraded[a] - degraded[p]
            wins = sum(x > y for x, y in zip(curves[a], curves[p]))
            verdict = ("agrees with [Petrželková 2024] (Figs 4.4-4.10): augmentation lifts robustness" if diff > 0.01 else
                       "contradicts [Petrželková 2024] (Figs 4.4-4.10), where augmentation lifts robustness" if diff < -0.01
                       else "is a tie (within 1 point), so it does not reproduce [Petrželková 2024]'s lift from augmentation")
            lines.append(f"{a} vs {p} under {result.spec.degradation}: mean balanced accuracy {degraded[a]:.3f} vs "
                         f"{degraded[p]:.3f} ({100 * diff:+.1f} points), higher at {wins} of {len(curves[a])} "
                         f"degraded strengths — this {verdict}.")
    return lines
