"""Does a detector generalize to a generator it never saw? [Petrželková 2024] §4.2 on any labelled folder.

* ``cross-generator`` (Table 4.1): one detector per generator, trained on that generator's train-split fakes
  against the train-split real images, tested on every generator's test split (that generator's test fakes
  and all test real images); accuracy, balanced accuracy and AP, rows = trained on, columns = tested on.
* ``leave-one-out`` (Table 4.2): one detector per generator trained on all the *other* generators' train
  fakes against the train real images, tested on every generator's test split; the left-out column is the
  one that measures generalization.
* ``few-shot`` (Fig. 4.2): start from the leave-one-out detector of a target generator and add k of its
  training images (k = 0, 5, 10, 25, 50, 100 by default, drawn with the repeat's seed, nested: the first k
  of one shuffled order); accuracy on the target's test split and on the other generators' against k.

Two presets ("preset" setting). ``cpu`` (the default): the detector is a logistic-regression probe on frozen
backbone features (one feature extraction of every image, cached on disk; each probe cached by config, data
fingerprint and training indices): seconds per model. ``fidelity`` (cross-generator and leave-one-out): a
network (``network``, ResNet-18 by default) trained end to end per cell for ``epochs`` epochs
(``experiments.networks``; each cached like a probe): minutes per model on 2 cores, as the paper's ResNet-50.
The notes of every result say which ran.

A probe cannot be fine-tuned the way a network is, so the few-shot step refits the probe on the union of
the leave-one-out training set and the k new images, each new image repeated ``w`` times (an integer
sample weight; fitted with ``core.fit_probe``, so it is cached like every probe). With ``shot_weight =
"auto"``, ``w = max(1, round(m / k))`` where ``m`` is the mean number of training fakes per seen generator:
the k images together weigh about as much as one whole seen generator, so 5 images move the boundary
instead of drowning among thousands of seen fakes (as in an unweighted refit); from k = m on, w = 1 (the
plain union). An integer ``shot_weight`` fixes ``w``; 1 is the unweighted union.

Repeats (``runs``) use seeds seed, seed+1, ...: repeat r splits the set 80/10/10 by source group with seed
seed+r (as training splits it) and fits its probes with that seed; the few-shot draw uses it too. Tables
give the mean and the sample standard deviation (ddof = 1; None with one run) over repeats.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from detectlab import config
from detectlab.errors import DatasetError
from detectlab.experiments import core
from detectlab.experiments.core import REAL, ExperimentResult, LabelledSet, ProbeCache
from detectlab.experiments.generalization_plots import few_shot_figure, matrix_figure
from detectlab.experiments.registry import ExperimentError, over_defaults
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress

METRICS = ("accuracy", "balanced_accuracy", "ap")
DEFAULT_SHOTS = [0, 5, 10, 25, 50, 100]

#: [Petrželková 2024] Table 4.1, test accuracy in % (rows trained on, columns tested on; ResNet-50 end to end).
TABLE_4_1 = {"generators": ["RV5.1", "SD1.4", "FA", "PG", "SG"],
             "accuracy": [[100, 58, 49, 50, 50], [51, 100, 50, 54, 49], [53, 50, 80, 87, 60],
                          [49, 61, 54, 100, 50], [48, 48, 54, 66, 94]]}
#: [Petrželková 2024] Table 4.2, test accuracy in % (rows left out, columns tested on).
TABLE_4_2 = {"generators": ["RV5.1", "SD1.4", "FA", "PG", "SG"],
             "accuracy": [[58, 92, 80, 94, 91], [91, 84, 85, 91, 91], [95, 94, 55, 94, 89],
                          [93, 92, 77, 79, 85], [95, 95, 80, 94, 52]]}


def _diag_off(matrix: list[list[float]]) -> tuple[float, float]:
    """Mean of the diagonal and of the off-diagonal cells of a square matrix."""
    a = np.asarray(matrix, dtype=np.float64)
    eye = np.eye(len(a), dtype=bool)
    return float(a[eye].mean()), float(a[~eye].mean())


# -- settings ------------------------------------------------------------------------------------------------
def _base_defaults(runs: int) -> dict:
    return {"data": str(config.DEMO_DIR), "seed": 0, "backbone": core.DEFAULT_BACKBONE, "size": core.DEFAULT_SIZE,
            "runs": runs, "c": 1.0}


PRESETS = ("cpu", "fidelity")
#: The fidelity preset's default: the shipped cnn-resnet18's recipe (``experiments.networks.train_settings``).
FIDELITY_EPOCHS = 10


def defaults_cross_generator() -> dict:
    """Every setting of the cross-generator matrix: ``data`` (a labelled folder: real/ + one folder per
    generator), ``seed`` (split and probe seed of the first repeat), ``backbone`` (a frozen backbone whose
    features the probes read), ``size`` (input side in pixels), ``runs`` (repeats, seeds seed..seed+runs-1),
    ``c`` (the probe's inverse L2 strength), ``preset`` ("cpu": the probes, seconds per model; "fidelity": a
    ``network`` trained end to end per cell for ``epochs`` epochs, minutes per model; queued, long)."""
    return {**_base_defaults(runs=1), "preset": "cpu", "network": "resnet18", "epochs": FIDELITY_EPOCHS}


def defaults_leave_one_out() -> dict:
    """Every setting of the leave-one-generator-out table (as ``defaults_cross_generator``)."""
    return defaults_cross_generator()


def defaults_few_shot() -> dict:
    """Every setting of the few-shot curves: those of ``defaults_cross_generator`` (3 runs by default), plus
    ``target`` (the left-out generator; "" = every generator in turn, one curve each), ``shots`` (the numbers
    k of the target's training images added) and ``shot_weight`` ("auto" or a whole number: how many times
    each added image counts; see the module docstring)."""
    return {**_base_defaults(runs=3), "target": "", "shots": list(DEFAULT_SHOTS), "shot_weight": "auto"}


_DEFAULTS: dict[str, Callable[[], dict]] = {"cross-generator": defaults_cross_generator,
                                            "leave-one-out": defaults_leave_one_out,
                                            "few-shot": defaults_few_shot}


def _whole(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _settings(name: str, params: dict | None) -> dict:
    """``params`` over the defaults of experiment ``name``, every setting checked (ExperimentError, one line)."""
    p = over_defaults(name, _DEFAULTS[name](), params)
    if not isinstance(p["data"], str) or not p["data"].strip():
        raise ExperimentError(f"{name}: data must be a folder path, got {p['data']!r}")
    for key, lo, hi in (("seed", 0, 2**31 - 1), ("runs", 1, 100), ("size", 16, 1024)):
        if not _whole(p[key]) or not lo <= p[key] <= hi:
            raise ExperimentError(f"{name}: {key} must be a whole number in [{lo}, {hi}], got {p[key]!r}")
        p[key] = int(p[key])
    if not isinstance(p["backbone"], str) or not p["backbone"].startswith("frozen:"):
        raise ExperimentError(f"{name}: backbone must be a frozen backbone such as {core.DEFAULT_BACKBONE}, "
                              f"got {p['backbone']!r}")
    if isinstance(p["c"], bool) or not isinstance(p["c"], (int, float)) or not 0 < float(p["c"]) < float("inf"):
        raise ExperimentError(f"{name}: c must be a positive number, got {p['c']!r}")
    p["c"] = float(p["c"])
    if "preset" in p:
        from detectlab.experiments.networks import ARCHES

        if p["preset"] not in PRESETS:
            raise ExperimentError(f"{name}: preset must be one of {', '.join(PRESETS)}, got {p['preset']!r}")
        if p["network"] not in ARCHES:
            raise ExperimentError(f"{name}: network must be one of {', '.join(ARCHES)}, got {p['network']!r}")
        if not _whole(p["epochs"]) or not 1 <= p["epochs"] <= 1000:
            raise ExperimentError(f"{name}: epochs must be a whole number in [1, 1000], got {p['epochs']!r}")
        p["epochs"] = int(p["epochs"])
    if name == "few-shot":
        if not isinstance(p["target"], str):
            raise ExperimentError(f"few-shot: target must be a generator's name or \"\" (all), got {p['target']!r}")
        shots = p["shots"]
        if (not isinstance(shots, (list, tuple)) or not shots or len(shots) > 50
                or not all(_whole(k) and k >= 0 for k in shots)):
            raise ExperimentError(f"few-shot: shots must be a list of whole numbers >= 0 (at most 50), got {shots!r}")
        p["shots"] = sorted({int(k) for k in shots})
        w = p["shot_weight"]
        if not (w == "auto" or (_whole(w) and 1 <= w <= 100_000)):
            raise ExperimentError(f"few-shot: shot_weight must be \"auto\" or a whole number >= 1, got {w!r}")
        p["shot_weight"] = w if w == "auto" else int(w)
    return p


# -- data ------------------------------------------------------------------------------------------------------
def resplit(base: LabelledSet, seed: int) -> LabelledSet:
    """``base`` split again with ``seed`` (what ``core.load_set(root, seed)`` gives, without listing the folder
    again). Items keep their order (it does not depend on the split), so ``base``'s features fit it row for row."""
    if seed == base.seed:
        return base
    from detectlab.data.splits import split

    parts = split(base.items, seed=seed)
    by_path = {i.path: name for name, part in parts.items() for i in part}
    return LabelledSet(base.root, [replace(i, split=by_path[i.path]) for i in base.items], seed)


def _load(p: dict, what: str) -> tuple[LabelledSet, list[LabelledSet]]:
    """The set split with the first seed, and one split per repeat; refuses (one line) fewer than 2 generators
    or a class without train or test images in some repeat's split."""
    root = Path(p["data"]).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{p['data']}: no such folder")
    base = core.load_set(root, seed=p["seed"], min_generators=0)
    gens = base.generators
    if len(gens) < 2:
        raise DatasetError(f"{root.name}: {len(gens)} generator{'s' if len(gens) != 1 else ''} "
                           f"({', '.join(gens) or 'none'}); {what} needs at least 2")
    sets = [resplit(base, p["seed"] + r) for r in range(p["runs"])]
    for data in sets:
        counts = data.counts()
        for part in ("train", "test"):
            for cls in (REAL, *gens):
                if not counts.get(part, {}).get(cls):
                    total = sum(c.get(cls, 0) for c in counts.values())
                    raise DatasetError(f"{root.name}: no {part} images of '{cls}' in the split with seed {data.seed} "
                                       f"({total} in all); {what} needs train and test images of every class")
    return base, sets


def _targets(p: dict, gens: list[str], root: Path) -> list[str]:
    if not p["target"]:
        return list(gens)
    if p["target"] not in gens:
        raise DatasetError(f"{root.name}: no generator '{p['target']}'; its generators are {', '.join(gens)}")
    return [p["target"]]


def _check_shots(p: dict, sets: list[LabelledSet], targets: list[str]) -> None:
    k = max(p["shots"])
    for data in sets:
        for target in targets:
            n = len(data.indices("train", [target], real=False))
            if k > n:
                raise DatasetError(f"{data.root.name}: few-shot k={k} needs {k} training images of '{target}'; "
                                   f"its train split has {n} (split seed {data.seed})")


def check_cross_generator(params: dict) -> None:
    """Refuse (one line, before anything is queued) settings or data the matrix cannot use: fewer than 2
    generators, a class without train or test images. Lists the folder; extracts nothing."""
    _load(_settings("cross-generator", params), "the cross-generator matrix")


def check_leave_one_out(params: dict) -> None:
    """As ``check_cross_generator`` for the leave-one-out table."""
    _load(_settings("leave-one-out", params), "leave-one-generator-out")


def check_few_shot(params: dict) -> None:
    """As ``check_cross_generator``, plus: the target is one of the generators, and its train split holds at
    least the largest k of ``shots`` in every repeat's split."""
    p = _settings("few-shot", params)
    base, sets = _load(p, "the few-shot curves")
    _check_shots(p, sets, _targets(p, base.generators, base.root))


# -- shared machinery ---------------------------------------------------------------------------------------------
def _r4(v) -> float | None:
    return None if v is None else round(float(v), 4)


def _mean_std(values) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof 1) of the defined values; std None with fewer than two."""
    v = [float(x) for x in values if x is not None]
    if not v:
        return None, None
    return _r4(np.mean(v)), (_r4(np.std(v, ddof=1)) if len(v) > 1 else None)


def _evaluate(scores_of: Callable[[np.ndarray], np.ndarray], data: LabelledSet, gens: list[str]) -> dict[str, dict]:
    """A model's metrics on each generator's test split (its test fakes + all test real images); ``scores_of``
    gives the model's P(fake) of the items at some positions."""
    test = data.indices("test")
    scores = scores_of(test)
    labels = data.labels(test)
    names = np.asarray(data.generator_of(test))
    real = labels == 0
    return {g: core.score_metrics(labels[real | (names == g)], scores[real | (names == g)]) for g in gens}


class _Run:
    """One experiment run's shared state: settings, the splits, the features, the cache and the clock."""

    def __init__(self, name: str, params: dict | None, what: str, progress: Progress, cancel: CancelToken,
                 cache: core.ModelCache | None):
        from detectlab.experiments.networks import NetworkCache

        self.start = time.perf_counter()
        self.name = name
        self.p = _settings(name, params)
        self.fidelity = self.p.get("preset") == "fidelity"
        self.base, self.sets = _load(self.p, what)
        self.gens = self.base.generators
        self.progress, self.cancel = progress, cancel
        kind = NetworkCache if self.fidelity else ProbeCache  # a cache of the other kind is not this run's
        self.cache = cache if isinstance(cache, kind) else kind()
        self.hits0, self.fits0 = self.cache.hits, self.cache.fits
        self.timings = {"load": round(time.perf_counter() - self.start, 3)}

    def extract(self) -> None:
        """Every item's backbone features, once per run (read from the feature cache when extracted before); with
        the fidelity preset, every item decoded once instead."""
        progress, cancel = self.progress, self.cancel
        cancel.check()
        t = time.perf_counter()
        if self.fidelity:
            from detectlab.experiments.networks import decode_all

            self.images = decode_all(self.base, self.p["size"], progress, cancel)
            self.timings["decode"] = round(time.perf_counter() - t, 3)
        else:
            self.feats = core.extract_features(self.base, self.p["backbone"], self.p["size"], progress=progress,
                                               cancel=cancel)
            if self.feats.values.shape[0] != len(self.base.items):
                raise RuntimeError(f"features of {self.feats.values.shape[0]} images for {len(self.base.items)} items")
            self.timings["features"] = round(self.feats.seconds, 3)
        self.fit_start = time.perf_counter()

    def fit(self, data: LabelledSet, idx: np.ndarray, stage: str = "") -> Callable[[np.ndarray], np.ndarray]:
        """A model trained on the items at ``idx``, as the function from positions to its P(fake)."""
        if self.fidelity:
            from detectlab.experiments import networks

            def cell_progress(done, total, desc=""):
                self.progress(done, total, f"{stage}: {desc}" if stage else desc)

            net = networks.fit_cell(self.images, data, idx, arch=self.p["network"], epochs=self.p["epochs"],
                                    size=self.p["size"], cache=self.cache, progress=cell_progress, cancel=self.cancel)
            return lambda at: networks.scores(net, self.images, at)
        probe = core.fit_probe(self.feats, data, idx, seed=data.seed, c=self.p["c"], cache=self.cache)
        return lambda at: probe.scores(self.feats.values[torch.as_tensor(at)].numpy())

    def model(self) -> str:
        """What one model of this run is, for the summary."""
        if self.fidelity:
            return f"{self.p['network']} trained end to end ({self.p['epochs']} epochs)"
        return f"probe on {self.p['backbone']} features"

    def notes(self) -> list[str]:
        split = "test splits hold each generator's test fakes and all test real images."
        if self.fidelity:
            from detectlab.experiments.networks import describe

            return [describe(self.p["network"], self.p["epochs"], self.p["size"]) + ".",
                    f"{len(self.base.items)} images decoded once in {self.timings.get('decode', 0):.1f} s; "
                    f"each model trained in memory (or read from the model cache); {split}"]
        f = self.feats
        how = "read from the feature cache" if f.cached else "extracted"
        return [f"CPU preset: a logistic-regression probe (C = {self.p['c']:g}) on {self.p['backbone']} "
                f"features at {self.p['size']} px, not the paper's ResNet-50 trained end to end.",
                f"Features of {len(self.base.items)} images {how} in {f.seconds:.1f} s; {split[0].upper()}{split[1:]}"]

    def result(self, tables: dict, figures: dict, summary: str, notes: list[str]) -> ExperimentResult:
        self.timings["models" if self.fidelity else "probes"] = round(time.perf_counter() - self.fit_start, 3)
        self.timings["total"] = round(time.perf_counter() - self.start, 3)
        splits = [{"seed": d.seed, "split": s, **{c: d.counts().get(s, {}).get(c, 0) for c in (REAL, *self.gens)}}
                  for d in self.sets for s in ("train", "val", "test")]
        return ExperimentResult(
            name=self.name, params=dict(self.p), tables={**tables, "splits": splits}, figures=figures,
            summary=summary, timings=self.timings, data_fingerprint=self.base.fingerprint,
            models={"fitted": self.cache.fits - self.fits0, "reused": self.cache.hits - self.hits0},
            notes=self.notes() + notes)


def _grid(run: _Run, row_key: str, train_gens: Callable[[str], list[str]], stage: str) -> list[dict]:
    """Per-repeat rows {seed, <row_key>, tested_on, metrics}: one probe per generator g (trained on the train
    fakes of ``train_gens(g)`` and the train real images), tested on every generator's test split."""
    rows, total = [], len(run.sets) * len(run.gens)
    for r, data in enumerate(run.sets):
        for gi, g in enumerate(run.gens):
            run.cancel.check()
            model = run.fit(data, data.indices("train", train_gens(g)),
                            f"model {r * len(run.gens) + gi + 1} of {total} ({row_key.replace('_', ' ')} {g})")
            ev = _evaluate(model, data, run.gens)
            rows += [{"seed": data.seed, row_key: g, "tested_on": t, **{m: _r4(ev[t][m]) for m in METRICS}}
                     for t in run.gens]
            run.progress(r * len(run.gens) + gi + 1, total, stage)
    return rows


def _aggregate(per_run: list[dict], row_key: str, gens: list[str]) -> list[dict]:
    """Long-form rows {<row_key>, tested_on, metric, metric_std, ...} averaged over repeats (rows x columns order)."""
    out = []
    for g in gens:
        for t in gens:
            cell = [r for r in per_run if r[row_key] == g and r["tested_on"] == t]
            row = {row_key: g, "tested_on": t}
            for m in METRICS:
                row[m], row[f"{m}_std"] = _mean_std(r[m] for r in cell)
            out.append(row)
    return out


def _matrices(long: list[dict], row_key: str, gens: list[str]) -> dict[str, list[dict]]:
    """One table per metric in matrix form: rows {<row_key>, <tested-on generator>: value, ...}."""
    cell = {(r[row_key], r["tested_on"]): r for r in long}
    return {f"{m}_matrix": [{row_key: g, **{t: cell[g, t][m] for t in gens}} for g in gens] for m in METRICS}


def _figures(long: list[dict], row_key: str, gens: list[str], row_title: str, col_title: str, title: str,
             row_label: Callable[[str], str] = str) -> dict:
    cell = {(r[row_key], r["tested_on"]): r for r in long}
    figs = {}
    for m in METRICS:
        values = [[cell[g, t][m] for t in gens] for g in gens]
        stds = [[cell[g, t][f"{m}_std"] for t in gens] for g in gens]
        any_std = any(s is not None for row in stds for s in row)
        figs[m] = matrix_figure([row_label(g) for g in gens], list(gens), values, stds if any_std else None, m,
                                row_title, col_title, f"{title} ({m.replace('_', ' ')}, %)")
    return figs


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


# -- cross-generator matrix (Table 4.1) ----------------------------------------------------------------------------
def run_cross_generator(params: dict, progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
                        cache: ProbeCache | None = None) -> ExperimentResult:
    """[Petrželková 2024] Table 4.1: one probe per generator (its train fakes vs the train real images), each
    tested on every generator's test split; accuracy, balanced accuracy and AP, mean (and std) over ``runs``.

    Tables: ``cross_generator`` (long form: trained_on, tested_on, metrics and their std), ``accuracy_matrix``,
    ``balanced_accuracy_matrix``, ``ap_matrix`` (rows trained on, a column per generator tested on), ``runs``
    (every repeat's cells), ``splits`` (images per split and class, per repeat). Figures: one heatmap per metric.

    Raises:
        DatasetError, ExperimentError: as ``check_cross_generator``.
    """
    run = _Run("cross-generator", params, "the cross-generator matrix", progress, cancel, cache)
    run.extract()
    per_run = _grid(run, "trained_on", lambda g: [g], "fit and test one probe per generator")
    long = _aggregate(per_run, "trained_on", run.gens)
    figures = _figures(long, "trained_on", run.gens, "trained on", "tested on", "cross-generator matrix")
    tables = {"cross_generator": long, **_matrices(long, "trained_on", run.gens), "runs": per_run}
    return run.result(tables, figures, _summary_cross(long, run.gens, run.p, run.model()), [])


def _summary_cross(long: list[dict], gens: list[str], p: dict, model: str) -> str:
    acc = {(r["trained_on"], r["tested_on"]): r["accuracy"] for r in long}
    diag = float(np.mean([acc[g, g] for g in gens]))
    off_cells = [(acc[g, t], g, t) for g in gens for t in gens if g != t]
    off = float(np.mean([v for v, _, _ in off_cells]))
    pd, po = _diag_off(TABLE_4_1["accuracy"])
    runs = f"{p['runs']} run{'s' if p['runs'] > 1 else ''}"
    text = [f"One {model} per generator ({runs}): accuracy {_pct(diag)} on the "
            f"generator it was trained on (the diagonal) and {_pct(off)} on the others (off the diagonal); "
            f"[Petrželková 2024] Table 4.1 (ResNet-50 trained end to end on five face generators) has {pd:.1f}% "
            f"and {po:.1f}%."]
    if diag - off >= 0.15 and off <= 0.65:
        text.append("As in the paper, a detector of one generator hardly detects the others: off the diagonal it "
                    "is near chance.")
    elif diag - off >= 0.15:
        text.append("The diagonal is stronger, as in the paper, but off the diagonal the probes stay well above "
                    "the paper's near-chance level: these generators share traces the probe can use.")
    else:
        text.append("Unlike the paper, the probes transfer between these generators almost as well as they "
                    "detect their own.")
    best, a, b = max(off_cells)
    back = acc[b, a]
    if best >= 0.6:
        asymmetric = ", asymmetric like the paper's FA → PG (87%) vs PG → FA (54%)."
        text.append(f"The strongest transfer is {a} → {b} ({_pct(best)}); {b} → {a} is {_pct(back)}"
                    + (asymmetric if best - back >= 0.1 else "."))
    else:
        text.append(f"No pair transfers: every off-diagonal cell is at most {_pct(best)}.")
    if len(gens) > 2:
        reach = {t: float(np.mean([acc[g, t] for g in gens if g != t])) for t in gens}
        hard = min(reach, key=reach.get)
        text.append(f"Hardest to detect with another generator's model: {hard} ({_pct(reach[hard])} on average).")
    return " ".join(text)


# -- leave one generator out (Table 4.2) ----------------------------------------------------------------------------
def run_leave_one_out(params: dict, progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
                      cache: ProbeCache | None = None) -> ExperimentResult:
    """[Petrželková 2024] Table 4.2: for each generator, a probe trained on all the other generators' train fakes
    vs the train real images, tested on every generator's test split.

    Tables: ``leave_one_out`` (long form: left_out, tested_on, metrics and their std, is_left_out),
    ``<metric>_matrix`` (rows left out, a column per generator tested on: the diagonal is the left-out one),
    ``left_out_vs_seen`` (per left-out generator: accuracy on it and mean accuracy on the seen ones), ``runs``,
    ``splits``. Figures: one heatmap per metric, the left-out cells outlined.

    Raises:
        DatasetError, ExperimentError: as ``check_leave_one_out``.
    """
    run = _Run("leave-one-out", params, "leave-one-generator-out", progress, cancel, cache)
    run.extract()
    per_run = _grid(run, "left_out", lambda g: [o for o in run.gens if o != g], "fit and test one probe per left-out")
    for r in per_run:
        r["is_left_out"] = r["left_out"] == r["tested_on"]
    long = _aggregate(per_run, "left_out", run.gens)
    for r in long:
        r["is_left_out"] = r["left_out"] == r["tested_on"]
    vs = []
    for g in run.gens:
        seen = [r for r in per_run if r["left_out"] == g and not r["is_left_out"]]
        own = [r for r in per_run if r["left_out"] == g and r["is_left_out"]]
        row = {"left_out": g}
        row["accuracy_left_out"], row["accuracy_left_out_std"] = _mean_std(r["accuracy"] for r in own)
        # per repeat, the mean over the seen generators; then mean and std of that over repeats
        per_seed = [np.mean([r["accuracy"] for r in seen if r["seed"] == d.seed]) for d in run.sets]
        row["accuracy_seen"], row["accuracy_seen_std"] = _mean_std(per_seed)
        vs.append(row)
    figures = _figures(long, "left_out", run.gens, "trained on all but", "tested on", "leave one generator out",
                       row_label=lambda g: f"−{g}")
    tables = {"leave_one_out": long, **_matrices(long, "left_out", run.gens), "left_out_vs_seen": vs, "runs": per_run}
    return run.result(tables, figures, _summary_loo(vs, run.p), [])


def _summary_loo(vs: list[dict], p: dict) -> str:
    left = float(np.mean([r["accuracy_left_out"] for r in vs]))
    seen = float(np.mean([r["accuracy_seen"] for r in vs]))
    pl, ps = _diag_off(TABLE_4_2["accuracy"])
    text = [f"Trained on all generators but one: accuracy {_pct(left)} on the left-out generator vs {_pct(seen)} "
            f"on the seen ones; [Petrželková 2024] Table 4.2 has {pl:.1f}% vs {ps:.1f}%."]
    if seen - left >= 0.10:
        text.append("As in the paper, a generator left out of training is detected markedly worse than the seen ones.")
    elif seen - left >= 0.03:
        text.append("A left-out generator is detected somewhat worse than the seen ones, a smaller gap than the "
                    "paper's.")
    else:
        text.append("Unlike the paper, the left-out generators are detected about as well as the seen ones: the "
                    "probe generalizes across these generators.")
    ranked = sorted(vs, key=lambda r: r["accuracy_left_out"])
    text.append(f"Best generalized to: {ranked[-1]['left_out']} ({_pct(ranked[-1]['accuracy_left_out'])}); "
                f"worst: {ranked[0]['left_out']} ({_pct(ranked[0]['accuracy_left_out'])}) "
                "(paper: SD1.4 84%, SG 52%).")
    return " ".join(text)


# -- few-shot curves (Fig. 4.2) ----------------------------------------------------------------------------------
def shot_weight(setting: str | int, k: int, per_generator: float) -> int:
    """How many times each of the k added images counts: ``setting`` itself when a number, else (``"auto"``)
    ``max(1, round(per_generator / k))`` so the k images weigh about one seen generator's training fakes."""
    if k <= 0:
        return 0
    if setting != "auto":
        return int(setting)
    return max(1, int(round(per_generator / k)))


def run_few_shot(params: dict, progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
                 cache: ProbeCache | None = None) -> ExperimentResult:
    """[Petrželková 2024] Fig. 4.2: from the leave-one-out probe of each target generator (k = 0, the diagonal of
    Table 4.2), refit with k of the target's training images added (weighted, see the module docstring);
    accuracy on the target's test split and mean accuracy over the other generators' test splits against k.

    Tables: ``few_shot`` (target, shots, accuracy/balanced accuracy/AP on the target, accuracy on the others,
    each with its std over ``runs``), ``runs`` (every repeat's numbers with the weight used), ``splits``.
    Figure: ``few_shot``, learning curves on a log axis with error bars.

    Raises:
        DatasetError, ExperimentError: as ``check_few_shot``.
    """
    run = _Run("few-shot", params, "the few-shot curves", progress, cancel, cache)
    p, gens = run.p, run.gens
    targets = _targets(p, gens, run.base.root)
    _check_shots(p, run.sets, targets)
    run.extract()
    per_run, total, done = [], len(run.sets) * len(targets) * len(p["shots"]), 0
    for data in run.sets:
        for target in targets:
            others = [g for g in gens if g != target]
            loo = data.indices("train", others)
            # one shuffled order per (repeat, target): the k images of a step include those of every smaller k
            rng = np.random.default_rng([data.seed, zlib.crc32(target.encode())])
            order = rng.permutation(data.indices("train", [target], real=False))
            per_gen = float(np.mean([len(data.indices("train", [g], real=False)) for g in others]))
            for k in p["shots"]:
                run.cancel.check()
                w = shot_weight(p["shot_weight"], k, per_gen)
                idx = np.sort(np.concatenate([loo, np.repeat(order[:k], w)])) if k else loo
                ev = _evaluate(run.fit(data, idx), data, gens)
                per_run.append({"seed": data.seed, "target": target, "shots": k, "weight": w,
                                **{f"{m}_target": _r4(ev[target][m]) for m in METRICS},
                                "accuracy_others": _r4(np.mean([ev[g]["accuracy"] for g in others]))})
                done += 1
                run.progress(done, total, f"few-shot probes ({target}, k = {k})")
    rows = []
    for target in targets:
        for k in p["shots"]:
            cell = [r for r in per_run if r["target"] == target and r["shots"] == k]
            row = {"target": target, "shots": k}
            for key in (*(f"{m}_target" for m in METRICS), "accuracy_others"):
                row[key], row[f"{key}_std"] = _mean_std(r[key] for r in cell)
            row["runs"] = len(cell)
            rows.append(row)
    weights = sorted({r["weight"] for r in per_run if r["shots"]})
    note = (f"Few-shot: each added image counts w times (shot_weight {p['shot_weight']!r}; w used: "
            f"{', '.join(map(str, weights)) or 'none'}); the probe is refitted on the leave-one-out training set "
            "plus the k images, not fine-tuned.")
    return run.result({"few_shot": rows, "runs": per_run}, {"few_shot": few_shot_figure(rows, p["backbone"])},
                      _summary_few_shot(rows, p), [note])


def _summary_few_shot(rows: list[dict], p: dict) -> str:
    kmax = max(p["shots"])
    kmin = min(p["shots"])
    parts = []
    for target in dict.fromkeys(r["target"] for r in rows):
        pts = {r["shots"]: r for r in rows if r["target"] == target}
        reach = next((k for k in sorted(pts) if (pts[k]["accuracy_target"] or 0) >= 0.9), None)
        parts.append(f"{target}: {_pct(pts[kmin]['accuracy_target'])} at k = {kmin} → "
                     f"{_pct(pts[kmax]['accuracy_target'])} at k = {kmax} (others {_pct(pts[kmin]['accuracy_others'])}"
                     f" → {_pct(pts[kmax]['accuracy_others'])}), "
                     + (f"90% first reached at k = {reach}" if reach is not None else f"below 90% up to k = {kmax}"))
    at = {(r["target"], r["shots"]): r["accuracy_target"] or 0.0 for r in rows}
    gains = {t: at[t, kmax] - at[t, kmin] for t, _ in at}
    top = max(gains, key=gains.get)
    verdict = (f"As in the paper, a few images of a new generator raise its detection markedly (up to "
               f"{100 * gains[top]:+.1f} points, {top})." if gains[top] >= 0.10 else
               f"Unlike the paper, the curves stay nearly flat (at most {100 * gains[top]:+.1f} points by k = {kmax}, "
               f"{top}): this probe gains little from a few images of a new generator.")
    return ("Accuracy on the left-out generator as k of its training images are added (mean over "
            f"{p['runs']} run{'s' if p['runs'] > 1 else ''}): " + "; ".join(parts) + ". [Petrželková 2024] Fig. 4.2 "
            "finds that for some generators units or small tens of images already raise accuracy markedly. "
            + verdict)
