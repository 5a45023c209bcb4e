"""Trace risk of synthetic training data ([Wimmer 2024], Tables 2 and 3).

A two-class *content* task (class A vs class B: two content groups of the real photos, e.g. the demo's
source packages) is learnt from training images that come, per class, from the real photos or from a
generator's counterparts of them (the generator image with the same file stem), and is always tested on
real images only. When one class is synthetic and the other real, a classifier can separate the training
classes by the generator's trace alone; on real test images that trace is absent, so it calls nearly
every test image the class that was real in training ([Wimmer 2024] §4.2: "nearly all test set images were
classified as VOID, the same class that includes the real training data"). The cleaned compositions train
on synthetic images whose fingerprint FP(R, S) (eq. 1) was removed with the Fingerprints tab's
Mean-Spectrum or Frequency-Peaks Attack (§5, Table 3; ``detectlab.spectral``).

The classifier is the CPU path's linear probe on frozen backbone features (one extraction of the whole
set, cached), not the paper's fine-tuned EfficientNet-B0. Each run draws a fixed-size random subsample of
training photos per class (the same photos for every composition of that run), so the compositions differ
only in where the pixels come from; mean ± std over ``runs`` runs with seeds seed, seed+1, ...
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from detectlab import config
from detectlab.errors import DatasetError
from detectlab.experiments import core
from detectlab.experiments.core import REAL, ExperimentResult, Item, LabelledSet, Probe, ProbeCache
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress

#: Where the real photos' content groups are read from (the demo's manifest of its real crops).
MANIFEST = "real_manifest.json"
SYNTHETIC = "synthetic"
#: Training sources of one class: the real photos, the generator's images, or those cleaned by a removal.
CLEANED = {"MSA": "msa", "FPA": "fpa"}
SOURCES = (REAL, SYNTHETIC, *(f"{SYNTHETIC}({m})" for m in CLEANED))
#: Table 2's compositions (class A / class B), then Table 3's cleaned ones.
COMPOSITIONS = ["real/real", "synthetic/synthetic", "real/synthetic", "synthetic/real",
                "synthetic(MSA)/real", "real/synthetic(MSA)", "synthetic(FPA)/real", "real/synthetic(FPA)",
                "synthetic(MSA)/synthetic(MSA)", "synthetic(FPA)/synthetic(FPA)"]
#: [Wimmer 2024] Table 2's balanced accuracies (128 px), for the summary's comparison.
PAPER = {"real/real": 0.91, "synthetic/synthetic": (0.81, 0.83), "mixed": (0.50, 0.76)}


def defaults_trace_risk() -> dict:
    """Every setting of the trace-risk experiment with its default.

    ``groups``: the two content groups [A, B] (empty: the two largest of the manifest); ``generator``: whose
    images are the synthetic ones (empty: the first generator); ``train_per_class``: training photos drawn per
    class and run (capped by what the smaller class has); ``compositions``: "<class A source>/<class B
    source>" with sources real, synthetic, synthetic(MSA), synthetic(FPA); ``strength``/``threshold``: the
    fingerprint removal's settings; ``c``: the probe's inverse L2 strength.
    """
    return {"data": str(config.DEMO_DIR), "seed": 0, "backbone": core.DEFAULT_BACKBONE, "size": core.DEFAULT_SIZE,
            "runs": 5, "generator": "", "groups": [], "train_per_class": 100, "compositions": list(COMPOSITIONS),
            "strength": 1.0, "threshold": 3.0, "c": 1.0}


# -- settings and data -------------------------------------------------------------------------------------
def _bad(message: str) -> Exception:
    from detectlab.experiments.registry import ExperimentError

    return ExperimentError(message)


def parse_composition(text: str) -> tuple[str, str]:
    """("class A source", "class B source") of "A/B"; an unknown source is refused by name."""
    parts = [p.strip() for p in str(text).split("/")]
    if len(parts) != 2 or not all(parts):
        raise _bad(f"composition {text!r}: write <class A source>/<class B source>, e.g. real/synthetic")
    for p in parts:
        if p not in SOURCES:
            raise _bad(f"composition {text!r}: unknown source {p!r}; sources are {', '.join(SOURCES)}")
    return parts[0], parts[1]


def _settings(params: dict) -> dict:
    """``params`` with defaults filled in and every setting checked (a bad one raises a ValueError)."""
    p = {**defaults_trace_risk(), **(params or {})}
    for key in ("runs", "train_per_class", "seed", "size"):
        if isinstance(p[key], bool) or not isinstance(p[key], (int, np.integer)):
            raise _bad(f"{key} must be a whole number, got {p[key]!r}")
    if p["runs"] < 1:
        raise _bad(f"runs must be at least 1, got {p['runs']}")
    if p["train_per_class"] < 2:
        raise _bad(f"train_per_class must be at least 2, got {p['train_per_class']}")
    if not 0.0 <= float(p["strength"]) <= 2.0:
        raise _bad(f"strength must be in [0, 2], got {p['strength']}")
    if float(p["c"]) <= 0:
        raise _bad(f"c must be positive, got {p['c']}")
    groups = list(p["groups"] or [])
    if groups and (len(groups) != 2 or groups[0] == groups[1]):
        raise _bad(f"groups must name two different content groups, got {groups}")
    if not p["compositions"]:
        raise _bad("compositions is empty; name at least one, e.g. real/synthetic")
    for comp in p["compositions"]:
        parse_composition(comp)
    return p


def content_groups(root: Path) -> dict[str, str]:
    """Each real image's file stem -> its content group, from ``root/real_manifest.json``.

    The manifest lists ``crops`` (``[{file, photo, package?}]`` or ``{stem: photo id}``) and ``photos``
    (``[{id, package}]``); a crop's group is its own ``package`` or its photo's.

    Raises:
        DatasetError: no manifest, or one that names no groups.
    """
    path = root / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{root.name}: no {MANIFEST} naming the real images' content groups; trace-risk needs "
                           f"two content groups of real photos (as the demo's manifest defines)")
    if path.stat().st_size > 64 * 1024 * 1024:
        raise DatasetError(f"{root.name}/{MANIFEST}: over 64 MB; not a manifest of crops")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{root.name}/{MANIFEST}: unreadable ({type(e).__name__})") from None
    photos = data.get("photos", []) if isinstance(data, dict) else []
    crops = data.get("crops", []) if isinstance(data, dict) else []
    package = {str(p.get("id")): str(p["package"]) for p in photos if isinstance(p, dict) and p.get("package")}
    out: dict[str, str] = {}
    if isinstance(crops, dict):
        crops = [{"file": stem, "photo": photo} for stem, photo in crops.items()]
    for c in crops if isinstance(crops, list) else []:
        if not isinstance(c, dict) or not c.get("file"):
            continue
        group = c.get("package") or package.get(str(c.get("photo")))
        if group:
            out[Path(str(c["file"])).stem] = str(group)
    if not out:
        raise DatasetError(f"{root.name}/{MANIFEST}: no crop names a content group (crops -> photo -> package)")
    return out


class _Task:
    """The content task on one data set: the two groups' training photos and real test images."""

    def __init__(self, data: LabelledSet, p: dict):
        self.data = data
        groups_of = content_groups(data.root)
        gens = data.generators
        self.generator = p["generator"] or (gens[0] if gens else "")
        if not self.generator:
            raise DatasetError(f"{data.root.name}: no generator folder; trace-risk needs one generator's images")
        if self.generator not in gens:
            raise DatasetError(f"{data.root.name}: no generator {self.generator!r}; it has {', '.join(gens)}")
        real_train: dict[str, dict[str, int]] = {}   # group -> stem -> row
        synth_train: dict[str, int] = {}            # stem -> row
        self.test: dict[str, list[int]] = {}         # group -> rows of real test images
        for k, item in enumerate(data.items):
            stem = item.path.stem
            if item.label == 0:
                group = groups_of.get(stem)
                if group is None:
                    continue
                if item.split == "train":
                    real_train.setdefault(group, {})[stem] = k
                elif item.split == "test":
                    self.test.setdefault(group, []).append(k)
            elif item.generator == self.generator and item.split == "train":
                synth_train[stem] = k
        # a training photo counts when the generator made its counterpart
        pools = {g: {s: k for s, k in rows.items() if s in synth_train} for g, rows in real_train.items()}
        named = list(p["groups"] or [])
        if named:
            known = sorted(set(groups_of.values()))
            for g in named:
                if g not in known:
                    raise DatasetError(f"{data.root.name}: no content group {g!r}; the manifest has "
                                       f"{', '.join(known[:8])}{' …' if len(known) > 8 else ''}")
            self.groups = named
        else:
            ranked = sorted(pools, key=lambda g: (-len(pools[g]), g))
            if len(ranked) < 2:
                raise DatasetError(f"{data.root.name}: {len(ranked)} content group(s) with training images "
                                   f"and {self.generator} counterparts; trace-risk needs two")
            self.groups = ranked[:2]
        for g in self.groups:
            if len(pools.get(g, {})) < 2:
                raise DatasetError(f"{data.root.name}: content group {g!r} has {len(pools.get(g, {}))} training "
                                   f"photo(s) with {self.generator} counterparts; trace-risk needs at least 2")
            if not self.test.get(g):
                raise DatasetError(f"{data.root.name}: content group {g!r} has no real test images")
        self.stems = {g: sorted(pools[g]) for g in self.groups}
        self.real_row = {s: k for g in self.groups for s, k in pools[g].items()}
        self.synth_row = {s: synth_train[s] for g in self.groups for s in pools[g]}
        self.n = min(int(p["train_per_class"]), *(len(self.stems[g]) for g in self.groups))


def _load(p: dict) -> _Task:
    data = core.load_set(p["data"], seed=int(p["seed"]), min_generators=1)
    return _Task(data, p)


def check_trace_risk(params: dict) -> None:
    """Refuse, in one line and without extracting features, data or settings trace-risk cannot use."""
    p = _settings(params)
    root = Path(p["data"])
    if not root.is_dir():
        raise DatasetError(f"{p['data']}: no such folder")
    content_groups(root)  # before the slower folder walk: the most likely thing to be missing
    _load(p)


# -- fingerprint removal -------------------------------------------------------------------------------
def _cleaned_set(task: _Task, method: str, p: dict, progress: Progress, cancel: CancelToken) -> LabelledSet:
    """The task's synthetic training images with their fingerprint removed (``detectlab.spectral.sets
    .clean_set``: FP(R, S) measured on the task's real and synthetic training images), written once under
    the cache and reused; as a labelled set of its own (one item per cleaned image)."""
    from detectlab.spectral.sets import clean_set

    stems = sorted(task.synth_row)
    real_files = [task.data.items[task.real_row[s]].path for s in stems]
    synth_files = [task.data.items[task.synth_row[s]].path for s in stems]
    key = json.dumps([task.data.fingerprint, str(task.data.root.resolve()), task.generator, method,
                      float(p["strength"]), float(p["threshold"]), int(p["size"]), stems])
    out = config.home() / "cache" / "experiments" / "trace-risk" / hashlib.sha256(key.encode()).hexdigest()[:24]
    if not out.exists():
        try:
            clean_set(real_files, synth_files, method, out, task.generator, float(p["strength"]),
                      float(p["threshold"]), int(p["size"]), progress=progress, cancel=cancel)
        except DatasetError:
            if not out.exists():   # another run wrote it meanwhile: use that one
                raise
    folder = out / f"{task.generator}-{method}"
    group = {s: task.data.items[task.synth_row[s]].group for s in stems}
    items = [Item(folder / f"{s}.png", 1, f"{task.generator}-{method}", group[s], "train")
             for s in stems if (folder / f"{s}.png").is_file()]
    return LabelledSet(out, items, task.data.seed)


# -- probes --------------------------------------------------------------------------------------------
def _fit(x: np.ndarray, y: np.ndarray, seed: int, c: float) -> Probe:
    """``core.fit_probe``'s logistic regression (standardized features, balanced classes) on content
    labels (0 class A, 1 class B) instead of real/fake ones."""
    from sklearn.linear_model import LogisticRegression

    mean, std = x.mean(0), x.std(0) + 1e-6
    clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced", random_state=seed)
    clf.fit((x - mean) / std, y)
    return Probe(mean, std, clf.coef_[0].astype(np.float64), float(clf.intercept_[0]))


def _hash(values) -> str:
    return hashlib.sha256(json.dumps(list(values)).encode()).hexdigest()


def _r4(v: float) -> float:
    return round(float(v), 4)


def run_trace_risk(params: dict, progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
                   cache: ProbeCache | None = None) -> ExperimentResult:
    """[Wimmer 2024] Tables 2 and 3 on a data set: per-class and balanced accuracy on real test images of
    a content classifier trained on each composition of real and synthetic classes, mean ± std over runs.

    Tables: ``compositions`` (one row per composition: class_a_accuracy, class_b_accuracy,
    balanced_accuracy (means), std (of the balanced accuracy), class_a_std, class_b_std; population std over
    the runs), ``runs`` (every run's numbers) and ``groups`` (the two content groups and their image counts).
    """
    timings: dict[str, float] = {}
    t = time.perf_counter()
    p = _settings(params)
    comps = [parse_composition(c) for c in p["compositions"]]
    task = _load(p)
    p["generator"], p["groups"] = task.generator, list(task.groups)
    timings["load"] = round(time.perf_counter() - t, 3)
    cache = cache if cache is not None else ProbeCache()
    hits0, fits0 = cache.hits, cache.fits

    t = time.perf_counter()
    feats = core.extract_features(task.data, p["backbone"], int(p["size"]), progress=progress, cancel=cancel)
    values = {REAL: (feats.values, task.real_row, task.data.fingerprint),
              SYNTHETIC: (feats.values, task.synth_row, task.data.fingerprint)}
    timings["features"] = round(time.perf_counter() - t, 3)

    t = time.perf_counter()
    for label, method in CLEANED.items():
        source = f"{SYNTHETIC}({label})"
        if any(source in c for c in comps):
            cleaned = _cleaned_set(task, method, p, progress, cancel)
            cf = core.extract_features(cleaned, p["backbone"], int(p["size"]), progress=progress, cancel=cancel)
            rows = {i.path.stem: k for k, i in enumerate(cleaned.items)}
            values[source] = (cf.values, rows, cleaned.fingerprint)
    timings["clean"] = round(time.perf_counter() - t, 3)

    # stems every needed source has (a cleaned image can be missing where its file was unreadable)
    needed = {s for c in comps for s in c}
    stems = {g: [s for s in task.stems[g] if all(s in values[src][1] for src in needed)] for g in task.groups}
    n = min(int(p["train_per_class"]), *(len(v) for v in stems.values()))
    if n < 2:
        raise DatasetError(f"{task.data.root.name}: fewer than 2 training photos per class have every source")
    test_rows = np.concatenate([np.asarray(task.test[g]) for g in task.groups])
    test_y = np.asarray([0] * len(task.test[task.groups[0]]) + [1] * len(task.test[task.groups[1]]))
    test_x = feats.values[torch.as_tensor(test_rows)].double().numpy()

    t = time.perf_counter()
    per_run: list[dict] = []
    total = int(p["runs"]) * len(comps)
    # the values themselves key the probes too: a probe fitted on other features is never reused
    digests = {src: hashlib.sha256(v[0].detach().float().contiguous().numpy().tobytes()).hexdigest()[:16]
               for src, v in values.items()}
    for r in range(int(p["runs"])):
        seed = int(p["seed"]) + r
        rng = np.random.default_rng(seed)
        picked = [[stems[g][i] for i in sorted(rng.choice(len(stems[g]), n, replace=False))] for g in task.groups]
        for ci, (name, (src_a, src_b)) in enumerate(zip(p["compositions"], comps)):
            cancel.check()
            # a side's training data: its source (with the generator, unless real), features and photos
            side = [[src, "" if src == REAL else task.generator, values[src][2], digests[src], _hash(chosen)]
                    for src, chosen in ((src_a, picked[0]), (src_b, picked[1]))]
            key = cache.key(experiment="trace-risk", backbone=p["backbone"], size=int(p["size"]), seed=seed,
                            c=float(p["c"]), a=side[0], b=side[1])
            probe = cache.get(key)
            if probe is None:
                x = np.concatenate([
                    values[src][0][torch.as_tensor([values[src][1][s] for s in chosen])].double().numpy()
                    for src, chosen in ((src_a, picked[0]), (src_b, picked[1]))])
                probe = _fit(x, np.asarray([0] * n + [1] * n), seed, float(p["c"]))
                cache.put(key, probe)
            pred = (probe.scores(test_x) > 0.5).astype(int)
            acc_a = float((pred[test_y == 0] == 0).mean())
            acc_b = float((pred[test_y == 1] == 1).mean())
            per_run.append({"composition": name, "run": r, "seed": seed, "class_a_accuracy": _r4(acc_a),
                            "class_b_accuracy": _r4(acc_b), "balanced_accuracy": _r4((acc_a + acc_b) / 2)})
            progress(r * len(comps) + ci + 1, total, "fit content probes")
    timings["probes"] = round(time.perf_counter() - t, 3)

    rows = []
    for name in p["compositions"]:
        mine = [x for x in per_run if x["composition"] == name]
        a, b, bal = (np.asarray([x[k] for x in mine]) for k in
                     ("class_a_accuracy", "class_b_accuracy", "balanced_accuracy"))
        rows.append({"composition": name, "class_a_accuracy": _r4(a.mean()), "class_b_accuracy": _r4(b.mean()),
                     "balanced_accuracy": _r4(bal.mean()), "std": _r4(bal.std()), "class_a_std": _r4(a.std()),
                     "class_b_std": _r4(b.std())})
    groups = [{"class": cls, "group": g, "train_photos": len(stems[g]), "train_per_run": n,
               "test_real": len(task.test[g])} for cls, g in zip("AB", task.groups)]
    from detectlab.experiments.trace_risk_plots import trace_risk_figure

    return ExperimentResult(
        name="trace-risk", params=p, tables={"compositions": rows, "runs": per_run, "groups": groups},
        figures={"compositions": trace_risk_figure(rows, task.groups, task.generator)},
        summary=summarize(rows, task.groups), timings=timings, data_fingerprint=task.data.fingerprint,
        models={"fitted": cache.fits - fits0, "reused": cache.hits - hits0},
        notes=[f"class A = {task.groups[0]}, class B = {task.groups[1]}; synthetic = {task.generator}'s "
               f"counterparts of the same photos; tested on {len(test_y)} real test images only",
               f"classifier: linear probe on frozen {p['backbone']} features, not the paper's fine-tuned "
               f"EfficientNet-B0; {n} training photos per class and run"])


# -- summary -------------------------------------------------------------------------------------------
def _sides(name: str) -> tuple[bool, bool]:
    a, b = name.split("/")
    return a == REAL, b == REAL


def headline(rows: list[dict], groups: list[str]) -> str:
    """One plain sentence saying what the table shows: whether a class trained from synthetic images
    collapses on real test images."""
    by = {r["composition"]: r for r in rows}
    rr = by.get("real/real")
    mixed = [r for r in rows if r["composition"] in ("real/synthetic", "synthetic/real")] or \
            [r for r in rows if sum(_sides(r["composition"])) == 1]
    if not mixed:
        lo = min(rows, key=lambda r: r["balanced_accuracy"])
        hi = max(rows, key=lambda r: r["balanced_accuracy"])
        return (f"Balanced accuracy on real test images ranges from {lo['balanced_accuracy']:.2f} "
                f"({lo['composition']}) to {hi['balanced_accuracy']:.2f} ({hi['composition']}).")
    worst = min(mixed, key=lambda r: r["balanced_accuracy"])
    real_a, _ = _sides(worst["composition"])
    syn, kept = ("b", "a") if real_a else ("a", "b")
    syn_group, real_group = (groups[1], groups[0]) if real_a else (groups[0], groups[1])
    syn_acc, kept_acc = worst[f"class_{syn}_accuracy"], worst[f"class_{kept}_accuracy"]
    base = f" against {rr['balanced_accuracy']:.2f} for real/real" if rr else ""
    if syn_acc < 0.5 and kept_acc - syn_acc > 0.3:
        return (f"Trained on {worst['composition']}, the classifier calls {1 - syn_acc:.0%} of the real "
                f"{syn_group} test images {real_group} (balanced accuracy {worst['balanced_accuracy']:.2f}{base}): "
                f"it learnt the generator's trace, not the content.")
    if rr and rr[f"class_{syn}_accuracy"] - syn_acc > 0.15:
        return (f"Trained on {worst['composition']}, the classifier recognises only {syn_acc:.0%} of the real "
                f"{syn_group} test images ({rr[f'class_{syn}_accuracy']:.0%} when trained on real/real; balanced "
                f"accuracy {worst['balanced_accuracy']:.2f}{base}): it learnt part of the generator's trace "
                f"instead of the content.")
    return (f"Trained on {worst['composition']}, the classifier still gets {syn_acc:.0%} of the real "
            f"{syn_group} test images right (balanced accuracy {worst['balanced_accuracy']:.2f}{base}): on this "
            f"data the generator's trace did not replace the content.")


def summarize(rows: list[dict], groups: list[str]) -> str:
    """The headline sentence, then where the numbers agree or disagree with [Wimmer 2024]."""
    by = {r["composition"]: r["balanced_accuracy"] for r in rows}
    out = [headline(rows, groups)]
    mixed = [by[c] for c in ("real/synthetic", "synthetic/real") if c in by]
    if "real/real" in by and "synthetic/synthetic" in by and mixed:
        rr, ss, lo, hi = by["real/real"], by["synthetic/synthetic"], min(mixed), max(mixed)
        order = ("the same order" if rr > ss > hi else
                 "the same order for the worse mixed composition only" if rr > ss > lo else "a different order")
        shown = f"{lo:.2f}" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}-{hi:.2f}"
        out.append(f"Wimmer et al.'s Table 2 has real/real 0.91 > synthetic/synthetic 0.81-0.83 > mixed "
                   f"0.50-0.76; here real/real {rr:.2f}, synthetic/synthetic {ss:.2f} and mixed {shown}, {order}.")
    gains = []
    for label in CLEANED:
        for base in ("real/synthetic", "synthetic/real"):
            cleaned = base.replace(SYNTHETIC, f"{SYNTHETIC}({label})")
            if base in by and cleaned in by:
                gains.append((by[cleaned] - by[base], cleaned))
    if gains:
        best, name = max(gains)
        verdict = "did not help either" if best < 0.05 else f"helped (up to {best:+.2f}, {name})"
        out.append(f"Wimmer et al. found that MSA and FPA fingerprint removal did not help (Table 3); on this data "
                   f"it {verdict}.")
    return " ".join(out)

