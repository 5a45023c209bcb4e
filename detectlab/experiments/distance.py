"""How far apart are two image sets? FID and KID on a named backbone's features (``set-distance``).

* FID, the Fréchet distance between Gaussians fitted to the two sets' features [Heusel et al. 2017, "GANs
  trained by a two time-scale update rule converge to a local Nash equilibrium", eq. 6]:
  ``FID = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``.
* KID, the unbiased estimate of the squared maximum mean discrepancy with the cubic polynomial kernel
  ``k(x, y) = (x . y / d + 1)^3`` [Bińkowski et al. 2018, "Demystifying MMD GANs", §4 and appendix],
  averaged over random subsets of equal size; mean and (population) standard deviation over subsets.

Both come from torchmetrics (``FrechetInceptionDistance`` and ``KernelInceptionDistance``) with the features
handed in directly, so the numbers are those of a maintained implementation. No Inception-v3 weights are on
this machine, so the features are a named frozen backbone's (default: the ImageNet MobileNetV2 of the CPU
path, ``core.DEFAULT_BACKBONE``), extracted once per data set and cached. Every number is labelled with that
backbone: it is *not* comparable with published FID or KID, which use Inception-v3 pool features.

Two ways to name the sets:

* two folders of images: ``{"a": "path/to/A", "b": "path/to/B"}`` (a value with a '/' is a folder; images
  found recursively; ``data`` plays no part);
* a labelled set and two class folders: ``{"data": root, "a": "real", "b": "pixel-shuffle"}``, or every pair
  of its classes with ``"pairs": "all"`` or no ``a`` and ``b`` (a matrix; the default, on the demo).

Finite samples bias FID upward (the covariances are estimated from n images). So every result also gives,
where a set holds at least 4 images, its *split-half floor*: the distance between two random halves of the
same set, i.e. what the estimator reads for two samples of one distribution (with n/2 images each, so it
somewhat overstates the floor at n). A pair near the floors is one the backbone's features cannot tell apart.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import torch

from detectlab import config
from detectlab.errors import DatasetError
from detectlab.experiments import core
from detectlab.experiments.core import REAL, ExperimentResult, Item, LabelledSet, ProbeCache
from detectlab.experiments.registry import ExperimentError, over_defaults
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress

SPLITS = ("all", "train", "val", "test")
#: Fewest images per set: a covariance (FID) and the unbiased MMD (KID) need two.
MIN_IMAGES = 2


def features_label(backbone: str) -> str:
    """The words every FID/KID number of ``backbone`` carries, so nobody compares it with published FID."""
    name = backbone.split(":", 1)[-1]
    return f"FID/KID on {name} features (not Inception-v3; not comparable with published FID/KID)"


# -- the two distances ------------------------------------------------------------------------------------------
class _GivenFeatures(torch.nn.Module):
    """A "feature extractor" that returns its input: torchmetrics' metrics then take features directly."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = int(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _as_features(x) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    if t.ndim != 2 or t.shape[0] < MIN_IMAGES:
        raise ValueError(f"features must be [N >= {MIN_IMAGES}, D]; got shape {tuple(t.shape)}")
    return t


def frechet_distance(a, b) -> float:
    """FID between feature sets ``a`` [N, D] and ``b`` [M, D] (float64), by torchmetrics'
    ``FrechetInceptionDistance`` [Heusel et al. 2017, eq. 6]."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    fa, fb = _as_features(a), _as_features(b)
    if fa.shape[1] != fb.shape[1]:
        raise ValueError(f"feature sizes differ: {fa.shape[1]} and {fb.shape[1]}")
    metric = FrechetInceptionDistance(feature=_GivenFeatures(fa.shape[1]))
    metric.update(fa, real=True)
    metric.update(fb, real=False)
    return float(metric.compute())


#: Up to this many images per set, KID's kernels are computed once over the whole sets and each subset reads
#: its block (the same subsets and numbers as torchmetrics' loop, about 50x faster for 100 subsets of 1000);
#: above it, torchmetrics' ``KernelInceptionDistance`` computes each subset's kernels itself.
KERNEL_ONCE_MAX = 4096


def kernel_distance(a, b, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float, int]:
    """KID between feature sets ``a`` and ``b``: mean and (population) standard deviation over ``subsets`` random
    subsets of ``min(subset_size, N, M)`` images each, as torchmetrics' ``KernelInceptionDistance`` computes it
    (its ``poly_kernel``, cubic with gamma = 1/D and coef 1, and ``maximum_mean_discrepancy``, the unbiased
    MMD² [Bińkowski et al. 2018]); the subsets are drawn with ``seed`` (torch's generator, a-subset then
    b-subset, as torchmetrics draws them).

    When the subset size reaches a set's size, each of that set's subsets is the whole set (std 0 for two
    such sets): the subsets are drawn without replacement.

    Returns:
        (kid_mean, kid_std, the subset size used).
    """
    from torchmetrics.image.kid import KernelInceptionDistance, maximum_mean_discrepancy, poly_kernel

    fa, fb = _as_features(a), _as_features(b)
    if fa.shape[1] != fb.shape[1]:
        raise ValueError(f"feature sizes differ: {fa.shape[1]} and {fb.shape[1]}")
    size = int(min(subset_size, fa.shape[0], fb.shape[0]))
    with torch.random.fork_rng(devices=[]):   # torchmetrics draws subsets with the global generator
        torch.manual_seed(seed)
        if max(fa.shape[0], fb.shape[0]) <= KERNEL_ONCE_MAX:
            k_aa, k_bb, k_ab = poly_kernel(fa, fa), poly_kernel(fb, fb), poly_kernel(fa, fb)
            scores = []
            for _ in range(int(subsets)):
                ia = torch.randperm(fa.shape[0])[:size]
                ib = torch.randperm(fb.shape[0])[:size]
                scores.append(maximum_mean_discrepancy(k_aa[ia][:, ia], k_ab[ia][:, ib], k_bb[ib][:, ib]))
            kid = torch.stack(scores)
            mean, std = kid.mean(), kid.std(unbiased=False)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # "will save all extracted features": they are ours already
                metric = KernelInceptionDistance(feature=_GivenFeatures(fa.shape[1]), subsets=int(subsets),
                                                 subset_size=size)
            metric.update(fa, real=True)
            metric.update(fb, real=False)
            mean, std = metric.compute()
    return float(mean), float(std), size


# -- settings ---------------------------------------------------------------------------------------------------
def defaults_set_distance() -> dict:
    """Every setting of ``set-distance``: ``data`` (a labelled folder, real/ + generator folders; ignored when
    ``a`` and ``b`` are folders), ``a``/``b`` (two class names of ``data``, or two image folders: a value with a
    '/' is a folder), ``pairs`` ("all", or ``a`` and ``b`` both empty: every pair of ``data``'s classes, a
    matrix; "": the pair a, b), ``split`` (all, train, val or test:
    which of ``data``'s images count), ``backbone`` (a frozen backbone whose features are compared), ``size``
    (input side in pixels), ``seed`` (split, subsampling, halves and KID subsets), ``max_images`` (at most this
    many images per set, drawn with the seed; 0 = all), ``kid_subsets`` and ``kid_subset_size`` (KID's random
    subsets; the size is capped by the smaller set), ``floor`` (also measure each set's split-half floor)."""
    return {"data": str(config.DEMO_DIR), "a": "", "b": "", "pairs": "", "split": "all",
            "backbone": core.DEFAULT_BACKBONE, "size": core.DEFAULT_SIZE, "seed": 0, "max_images": 0,
            "kid_subsets": 100, "kid_subset_size": 1000, "floor": True}


def _whole(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_path(text: str) -> bool:
    """Whether ``a``/``b`` names a folder (it holds a path separator or starts with ~) rather than a class."""
    return "/" in text or "\\" in text or text.startswith("~")


def _settings(params: dict | None) -> dict:
    """``params`` over the defaults, each checked (ExperimentError, one line), with the mode made explicit:
    two folders (``data``, ``pairs`` and ``split`` cleared), every pair of ``data``'s classes (``pairs`` "all",
    ``a`` and ``b`` cleared), or two classes of ``data``."""
    p = over_defaults("set-distance", defaults_set_distance(), params)
    for key in ("data", "a", "b", "pairs", "split", "backbone"):
        if not isinstance(p[key], str):
            raise ExperimentError(f"set-distance: {key} must be text, got {p[key]!r}")
        p[key] = p[key].strip()
    for key, lo, hi in (("seed", 0, 2**31 - 1), ("size", 16, 1024), ("max_images", 0, 10**7),
                        ("kid_subsets", 1, 10_000), ("kid_subset_size", 2, 100_000)):
        if not _whole(p[key]) or not lo <= p[key] <= hi:
            raise ExperimentError(f"set-distance: {key} must be a whole number in [{lo}, {hi}], got {p[key]!r}")
        p[key] = int(p[key])
    if not isinstance(p["floor"], bool):
        raise ExperimentError(f"set-distance: floor must be true or false, got {p['floor']!r}")
    if p["pairs"] not in ("", "all"):
        raise ExperimentError(f"set-distance: pairs must be \"all\" or \"\" (the pair a, b), got {p['pairs']!r}")
    if p["split"] not in SPLITS:
        raise ExperimentError(f"set-distance: split must be one of {', '.join(SPLITS)}, got {p['split']!r}")
    if not p["backbone"].startswith("frozen:"):
        raise ExperimentError(f"set-distance: backbone must be a frozen backbone such as {core.DEFAULT_BACKBONE}, "
                              f"got {p['backbone']!r}")
    folders = [_is_path(p[k]) for k in ("a", "b")]
    if all(folders):                       # two folders: the data set plays no part
        p["data"], p["pairs"], p["split"] = "", "", "all"
    elif any(folders):
        raise ExperimentError("set-distance: a and b must both be folder paths (with a '/') or both class names")
    elif not p["data"]:
        raise ExperimentError("set-distance: give two image folders a and b, or a data set and two class names")
    elif p["pairs"] == "all" or not (p["a"] or p["b"]):
        p["a"], p["b"], p["pairs"] = "", "", "all"
    elif not (p["a"] and p["b"]):
        raise ExperimentError("set-distance: name two classes a and b of the data set, or set pairs to \"all\"")
    return p


# -- the sets ---------------------------------------------------------------------------------------------------
def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _folder_images(folder: Path) -> list[Path]:
    """Image files below ``folder`` (recursive, sorted); links that lead outside it are left out."""
    from detectlab.data import is_image_file

    root = folder.resolve()
    out = []
    for f in sorted(folder.rglob("*")):
        try:
            if f.is_file() and is_image_file(f) and f.resolve().is_relative_to(root):
                out.append(f)
        except OSError:
            continue
    return out


def _few(name: str, n: int) -> DatasetError:
    return DatasetError(f"{name}: {n} image{'s' if n != 1 else ''}; FID and KID need at least {MIN_IMAGES} per set")


def _folder_set(text: str, p: dict) -> LabelledSet:
    """The images of folder ``text`` as a one-class set (subsampled to ``max_images`` with the seed)."""
    folder = Path(text).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"{text}: no such folder")
    files = _folder_images(folder)
    if len(files) < MIN_IMAGES:
        raise _few(text, len(files))
    if p["max_images"] and len(files) > p["max_images"]:
        keep = np.sort(np.random.default_rng(p["seed"]).choice(len(files), p["max_images"], replace=False))
        files = [files[k] for k in keep]
    # label and split are placeholders: the feature cache only reads paths; the fingerprint covers the files
    return LabelledSet(folder, [Item(f, 0, folder.name, f.stem, "test") for f in files], p["seed"])


def _labelled(p: dict) -> tuple[LabelledSet, dict[str, np.ndarray]]:
    """The labelled set and the rows of each class (in ``split``; at most ``max_images``, drawn with the seed)."""
    root = Path(p["data"]).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{p['data']}: no such folder")
    try:
        data = core.load_set(root, seed=p["seed"], min_generators=1)
    except DatasetError as exc:
        raise DatasetError(_first_line(exc)) from exc
    classes = [REAL, *data.generators]
    wanted = classes if p["pairs"] == "all" else [p["a"], p["b"]]
    for name in wanted:
        if name not in classes:
            raise DatasetError(f"{root.name}: no class '{name}'; its classes are {', '.join(classes)}")
    rows = {}
    split = None if p["split"] == "all" else p["split"]
    names = np.asarray([i.generator for i in data.items])
    in_split = np.asarray([split is None or i.split == split for i in data.items])
    for name in dict.fromkeys(wanted):
        idx = np.flatnonzero((names == name) & in_split)
        if len(idx) < MIN_IMAGES:
            where = "" if split is None else f" in the {split} split"
            raise _few(f"{root.name}/{name}{where}", len(idx))
        if p["max_images"] and len(idx) > p["max_images"]:
            idx = np.sort(np.random.default_rng(p["seed"]).choice(idx, p["max_images"], replace=False))
        rows[name] = idx
    return data, rows


def _import_metrics() -> None:
    try:
        import torchmetrics  # noqa: F401
    except ImportError as exc:
        raise ExperimentError("set-distance needs torchmetrics (pip install torchmetrics); "
                              "it is not installed") from exc


def check_set_distance(params: dict) -> None:
    """Refuse (one line, before anything is queued) settings or sets FID/KID cannot use: a missing folder or
    class, a set with fewer than 2 images. Lists the folders; extracts nothing."""
    p = _settings(params)
    _import_metrics()
    if p["data"]:
        _labelled(p)
    else:
        _folder_set(p["a"], p)
        _folder_set(p["b"], p)


# -- the run ----------------------------------------------------------------------------------------------------
def _round(v: float, digits: int) -> float:
    return round(float(v), digits) + 0.0   # + 0.0: no "-0.0" in tables


def _row(a: str, b: str, kind: str, fa: torch.Tensor, fb: torch.Tensor, p: dict, label: str) -> dict:
    fid = frechet_distance(fa, fb)
    kid_mean, kid_std, size = kernel_distance(fa, fb, p["kid_subsets"], p["kid_subset_size"], p["seed"])
    return {"a": a, "b": b, "kind": kind, "n_a": int(fa.shape[0]), "n_b": int(fb.shape[0]),
            "fid": _round(fid, 4), "kid_mean": _round(kid_mean, 6), "kid_std": _round(kid_std, 6),
            "kid_subsets": p["kid_subsets"], "kid_subset_size": size, "features": label}


def _halves(n: int, seed: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random halves of range(n), drawn with the seed and the set's name (so they differ by set)."""
    import zlib

    order = np.random.default_rng([seed, zlib.crc32(name.encode())]).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2: 2 * (n // 2)])


def run_set_distance(params: dict, progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
                     cache: ProbeCache | None = None) -> ExperimentResult:
    """FID and KID between two sets (two folders, or two classes of a labelled set), or between every pair of
    a labelled set's classes, on a named backbone's features; plus each set's split-half floor.

    Tables: ``distances``, one row per pair (``kind`` "pair") and per floor (``kind`` "split-half", a = b):
    ``{a, b, kind, n_a, n_b, fid, kid_mean, kid_std, kid_subsets, kid_subset_size, features}``.
    Figures: ``distance`` (heatmaps of FID and KID over the classes, floors on the diagonal; or, for one pair,
    bars beside the floors). No probe is fitted (``cache`` is unused; models = 0 fitted, 0 reused).

    Raises:
        DatasetError / ExperimentError: as ``check_set_distance``.
    """
    from detectlab.experiments.distance_plots import distance_figure

    start = time.perf_counter()
    p = _settings(params)
    _import_metrics()
    label = features_label(p["backbone"])
    timings: dict[str, float] = {}
    cancel.check()

    sets: dict[str, torch.Tensor] = {}
    if p["data"]:
        data, rows = _labelled(p)
        fingerprint = data.fingerprint
        feats = core.extract_features(data, p["backbone"], p["size"], progress=progress, cancel=cancel)
        timings["features"] = round(feats.seconds, 3)
        for name, idx in rows.items():
            sets[name] = feats.values[torch.as_tensor(idx)].double()
        classes = list(rows)
        pairs = ([(x, y) for i, x in enumerate(classes) for y in classes[i + 1:]] if p["pairs"] == "all"
                 else [(p["a"], p["b"])])
        where = data.root.name + ("" if p["split"] == "all" else f", {p['split']} split")
    else:
        sa, sb = _folder_set(p["a"], p), _folder_set(p["b"], p)
        fingerprint = f"{sa.fingerprint}+{sb.fingerprint}"
        names = [p["a"], p["b"]]
        seconds = 0.0
        for name, s in zip(names, (sa, sb)):
            cancel.check()
            f = core.extract_features(s, p["backbone"], p["size"], progress=progress, cancel=cancel)
            seconds += f.seconds
            sets[name] = f.values.double()
        timings["features"] = round(seconds, 3)
        classes = list(dict.fromkeys(names))
        pairs = [(p["a"], p["b"])]
        where = "two folders"

    floors = [c for c in classes if p["floor"] and sets[c].shape[0] >= 2 * MIN_IMAGES]
    total = len(pairs) + len(floors)
    table: list[dict] = []
    t0 = time.perf_counter()
    for k, (a, b) in enumerate(pairs):
        cancel.check()
        progress(k, total, f"FID and KID: {a} vs {b}")
        table.append(_row(a, b, "pair", sets[a], sets[b], p, label))
    for k, name in enumerate(floors):
        cancel.check()
        progress(len(pairs) + k, total, f"split-half floor: {name}")
        h1, h2 = _halves(sets[name].shape[0], p["seed"], name)
        table.append(_row(name, name, "split-half", sets[name][h1], sets[name][h2], p, label))
    progress(total, total, "FID and KID done")
    timings["distances"] = round(time.perf_counter() - t0, 3)
    timings["total"] = round(time.perf_counter() - start, 3)

    result = ExperimentResult(
        name="set-distance", params=p, tables={"distances": table},
        figures={"distance": distance_figure(table, classes, label)},
        summary=_summary(table, label, where), timings=timings, data_fingerprint=fingerprint,
        models={"fitted": 0, "reused": 0},
        notes=[label + ".",
               "FID: torchmetrics FrechetInceptionDistance [Heusel 2017]; KID: torchmetrics KernelInceptionDistance, "
               f"unbiased MMD² with the cubic polynomial kernel, {p['kid_subsets']} subsets [Bińkowski 2018].",
               "split-half: two random halves of one set (n/2 images each), the estimator's floor for two samples "
               "of one distribution."])
    return result


def _summary(table: list[dict], label: str, where: str) -> str:
    """What the numbers show, with the floors as the yardstick. FID is biased upward by finite samples, the
    more so the further n lies below the feature size [Bińkowski 2018 §4; Chong & Forsyth 2020]; KID is
    unbiased, so the verdict "apart or not" is read from KID against its floors."""
    pairs = sorted((r for r in table if r["kind"] == "pair"), key=lambda r: r["fid"])
    floors = [r for r in table if r["kind"] == "split-half"]
    parts = [f"{label}; data: {where}."]
    shown = ", ".join(f"{r['a']} vs {r['b']} {r['fid']:.2f} (KID {r['kid_mean']:.4f} ± {r['kid_std']:.4f})"
                      for r in pairs)
    parts.append(f"FID, smallest first: {shown}.")
    if not floors:
        return " ".join(parts)
    f_lo, f_hi = min(r["fid"] for r in floors), max(r["fid"] for r in floors)
    k_top = max(abs(r["kid_mean"]) for r in floors)
    sizes = sorted({r["n_a"] for r in floors})
    size = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}–{sizes[-1]}"
    parts.append(f"Two random halves of one set ({size} images each; the estimator's floor for two samples of one "
                 f"distribution) read FID {f_lo:.2f}{'' if f_hi - f_lo < 0.005 else f' to {f_hi:.2f}'} "
                 f"and |KID| at most {k_top:.4f}.")
    near = [r for r in pairs if r["kid_mean"] - 2 * r["kid_std"] <= k_top]
    contradicted = [r for r in pairs if r not in near and r["fid"] <= f_hi]
    if contradicted:
        parts.append("FID's finite-sample bias is as large as the differences here (it grows as the number of "
                     "images falls below the feature size): FID puts "
                     + ", ".join(f"{r['a']} vs {r['b']}" for r in contradicted)
                     + " within the floors although KID, which is unbiased, sets them apart; read KID.")
    if near:
        parts.append("By KID, within the floors (the features hardly tell them apart): "
                     + ", ".join(f"{r['a']} vs {r['b']}" for r in near) + ".")
    else:
        parts.append("By KID, every pair lies above the floors (by more than twice its spread over subsets): the "
                     "features tell every pair apart.")
    return " ".join(parts)
