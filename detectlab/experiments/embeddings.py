"""Where do real and fake images sit in a detector's feature space? ([DFwF] §4.2, ``embeddings``.)

[DFwF] shows, as 2-D maps (UMAP) of frozen backbones' embeddings, that a backbone's features can keep GAN
images apart from real ones (SynCLR's better than CLIP's). This experiment draws the same kind of map for any
labelled folder: a t-SNE [van der Maaten & Hinton 2008] (scikit-learn; UMAP is not installed) of the features
of a subsample of each class (real and every generator), one colour per class, each point carrying its
image (file name on hover; a small PNG thumbnail in the point's ``customdata``, shown by the tab on click and
by the HTML card on hover, see ``HOVER_IMAGE_JS`` and ``thumbnail_of``).

A 2-D map distorts distances, so the separability is measured in the feature space itself, beside the map:

* linear-probe accuracy: k-fold (default 5) stratified cross-validation of the CPU path's logistic-regression
  probe (``core.fit_probe``, class-balanced, cached like every probe) on real vs all fakes and on real vs
  each generator; accuracy, balanced accuracy (chance 0.5) and AP of the out-of-fold scores;
* the silhouette score [Rousseeuw 1987] of the real/fake labels in the (unscaled) feature space
  (``sklearn.metrics.silhouette_score``, Euclidean): near 1 the two form separate clusters, near 0 they
  overlap, below 0 they are interleaved. A linear probe can separate classes that do not cluster (a low
  silhouette with a high probe accuracy: the difference lies along few directions).

Features: a frozen backbone's (``backbone``, default the ImageNet MobileNetV2 of the CPU path; every image of
the set is extracted once and cached, shared with the other experiments), or, with ``detector`` set, the
penultimate (pre-logit) features of a shipped or trained detector (``catalog.load_detector``; its
``features`` method, at its input size; only the subsample is extracted, cached on disk by checkpoint file
and data fingerprint). Every detector answers ``features``, so any shipped name works; a ResNet-18 costs a
few seconds per hundred images on CPU.
"""

from __future__ import annotations

import base64
import hashlib
import io
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from detectlab import config
from detectlab.errors import DatasetError, DetectLabError
from detectlab.experiments import core
from detectlab.experiments.core import REAL, ExperimentResult, Features, LabelledSet, ProbeCache, features_on_disk
from detectlab.experiments.registry import ExperimentError, over_defaults
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress

SPLITS = ("test", "val", "train", "all")
#: The pooled "every generator" side of the real-vs-fake row.
ALL_FAKES = "all generators"


# -- settings ---------------------------------------------------------------------------------------------------
def defaults_embeddings() -> dict:
    """Every setting of ``embeddings``: ``data`` (a labelled folder: real/ + one folder per generator), ``seed``
    (split, subsample, t-SNE and probe folds), ``backbone`` (a frozen backbone whose features are mapped),
    ``detector`` (a shipped or trained detector's name: map its penultimate features instead; "" = the
    backbone), ``size`` (input side for the backbone), ``split`` (test, val, train or all), ``per_class`` (at
    most this many images per class, drawn with the seed), ``perplexity`` and ``iterations`` (t-SNE's;
    perplexity is capped at (n - 1) / 3), ``folds`` (cross-validation folds of the probe, capped by the
    smallest class), ``thumbnail`` (side in pixels of each point's PNG thumbnail; 0 = none)."""
    return {"data": str(config.DEMO_DIR), "seed": 0, "backbone": core.DEFAULT_BACKBONE, "detector": "",
            "size": core.DEFAULT_SIZE, "split": "test", "per_class": 200, "perplexity": 30.0,
            "iterations": 1000, "folds": 5, "thumbnail": 32}


def _whole(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _settings(params: dict | None) -> dict:
    """``params`` over the defaults, each checked (ExperimentError, one line)."""
    p = over_defaults("embeddings", defaults_embeddings(), params)
    for key in ("data", "backbone", "detector", "split"):
        if not isinstance(p[key], str):
            raise ExperimentError(f"embeddings: {key} must be text, got {p[key]!r}")
        p[key] = p[key].strip()
    if not p["data"]:
        raise ExperimentError("embeddings: data must be a folder path, got ''")
    for key, lo, hi in (("seed", 0, 2**31 - 1), ("size", 16, 1024), ("per_class", 2, 100_000),
                        ("iterations", 250, 100_000), ("folds", 2, 20), ("thumbnail", 0, 128)):
        if not _whole(p[key]) or not lo <= p[key] <= hi:
            raise ExperimentError(f"embeddings: {key} must be a whole number in [{lo}, {hi}], got {p[key]!r}")
        p[key] = int(p[key])
    perplexity = p["perplexity"]
    if isinstance(perplexity, bool) or not isinstance(perplexity, (int, float)) or not 1 <= perplexity <= 500:
        raise ExperimentError(f"embeddings: perplexity must be a number in [1, 500], got {perplexity!r}")
    p["perplexity"] = float(perplexity)
    if p["split"] not in SPLITS:
        raise ExperimentError(f"embeddings: split must be one of {', '.join(SPLITS)}, got {p['split']!r}")
    if not p["detector"] and not p["backbone"].startswith("frozen:"):
        raise ExperimentError(f"embeddings: backbone must be a frozen backbone such as {core.DEFAULT_BACKBONE}, "
                              f"got {p['backbone']!r}")
    return p


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _load(p: dict) -> tuple[LabelledSet, np.ndarray]:
    """The labelled set and the rows of the subsample (real first, then each generator; at most ``per_class``
    per class from ``split``, drawn with the seed). Refuses (one line) a class with fewer than 2 images there."""
    root = Path(p["data"]).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{p['data']}: no such folder")
    try:
        data = core.load_set(root, seed=p["seed"], min_generators=1)
    except DatasetError as exc:
        raise DatasetError(_first_line(exc)) from exc
    split = None if p["split"] == "all" else p["split"]
    names = np.asarray([i.generator for i in data.items])
    in_split = np.asarray([split is None or i.split == split for i in data.items])
    rng = np.random.default_rng(p["seed"])
    rows = []
    for name in (REAL, *data.generators):
        idx = np.flatnonzero((names == name) & in_split)
        if len(idx) < 2:
            where = "" if split is None else f" in the {split} split"
            hint = "" if split is None else " (try split \"all\")"
            raise DatasetError(f"{root.name}/{name}: {len(idx)} image{'s' if len(idx) != 1 else ''}{where}; "
                               f"embeddings need at least 2 per class{hint}")
        if len(idx) > p["per_class"]:
            idx = np.sort(rng.choice(idx, p["per_class"], replace=False))
        rows.append(idx)
    return data, np.concatenate(rows)


def check_embeddings(params: dict) -> None:
    """Refuse (one line, before anything is queued) settings or data the map cannot use: no generator, a class
    with fewer than 2 images in the split, an unknown detector. Lists the folder; extracts nothing."""
    p = _settings(params)
    _load(p)
    if p["detector"]:
        from detectlab import catalog

        try:
            catalog.resolve_detector(p["detector"])
        except DetectLabError as exc:
            raise ExperimentError(f"embeddings: {_first_line(exc)}") from exc


# -- features ---------------------------------------------------------------------------------------------------
@torch.no_grad()
def _detector_features(loaded, sub: LabelledSet, progress: Progress, cancel: CancelToken,
                       batch: int = 32) -> Features:
    """Penultimate features of every item of ``sub`` by a loaded detector (``Detector.features`` at its input
    size), kept in the shared feature cache (``data.featcache``) by checkpoint file, modification time and files."""
    from detectlab.data import featcache

    start = time.perf_counter()
    size = loaded.input_size
    stat = loaded.path.stat()
    version = hashlib.sha256(f"{loaded.path.resolve()}|{stat.st_mtime_ns}|{stat.st_size}".encode()).hexdigest()[:12]
    # the probes' cache key reads this label: a rebuilt checkpoint of the same name gets new probes
    label = f"detector:{loaded.short_name}@{version}"
    cache_key = featcache.key(f"detector:{loaded.path.resolve()}@{version}", [i.path for i in sub.items], size=size)
    values, cached = features_on_disk(cache_key, sub.items, size, lambda: loaded.detector.features,
                                      f"extract {loaded.short_name} features", progress, cancel, batch)
    return Features(label, size, values, cached, time.perf_counter() - start)


def _features(p: dict, data: LabelledSet, rows: np.ndarray, progress: Progress,
              cancel: CancelToken) -> tuple[LabelledSet, Features, str]:
    """The subsample as its own set, its features (row k = ``sub.items[k]``), and what they are, in words."""
    sub = LabelledSet(data.root, [data.items[k] for k in rows], data.seed)
    if p["detector"]:
        from detectlab import catalog

        try:
            loaded = catalog.load_detector(p["detector"])
        except DetectLabError as exc:
            raise ExperimentError(f"embeddings: {_first_line(exc)}") from exc
        feats = _detector_features(loaded, sub, progress, cancel)
        return sub, feats, f"{loaded.short_name} penultimate features ({loaded.kind}, {feats.values.shape[1]}-d)"
    full = core.extract_features(data, p["backbone"], p["size"], progress=progress, cancel=cancel)
    if full.values.shape[0] != len(data.items):
        raise RuntimeError(f"features of {full.values.shape[0]} images for {len(data.items)} items")
    feats = Features(full.backbone, full.size, full.values[torch.as_tensor(rows)], full.cached, full.seconds)
    name = p["backbone"].split(":", 1)[-1]
    return sub, feats, f"frozen {name} features ({feats.values.shape[1]}-d)"


# -- the map and the separability -----------------------------------------------------------------------------
def tsne_map(x: np.ndarray, seed: int = 0, perplexity: float = 30.0, iterations: int = 1000) -> np.ndarray:
    """2-D t-SNE of features ``x`` [N, D]: standardized, reduced to at most 50 principal components (the usual
    preprocessing; it removes noise dimensions and speeds the neighbour search), then scikit-learn's
    Barnes-Hut t-SNE with PCA initialisation. Perplexity is capped at (N - 1) / 3.

    It runs on one thread: the map is then the same on any machine, and the OpenMP and BLAS threads spin for
    many times the work on a busy machine (12 s instead of 0.4 s for 90 points on 2 shared cores)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _tsne(np.asarray(x, dtype=np.float64), seed, perplexity, iterations)


def _tsne(x: np.ndarray, seed: int, perplexity: float, iterations: int) -> np.ndarray:
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    z = (x - x.mean(0)) / (x.std(0) + 1e-6)
    k = int(min(50, z.shape[0] - 1, z.shape[1]))
    if k < z.shape[1]:
        z = PCA(n_components=k, svd_solver="full", random_state=seed).fit_transform(z)
    perp = float(min(perplexity, max(1.0, (z.shape[0] - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perp, init="pca", learning_rate="auto", max_iter=int(iterations),
                random_state=seed)
    return tsne.fit_transform(z)


def separability(feats: Features, sub: LabelledSet, rows: np.ndarray, folds: int, seed: int,
                 cache: ProbeCache | None, progress: Progress = null_progress, done: int = 0,
                 total: int | None = None, cancel: CancelToken = NEVER_CANCEL) -> dict:
    """Cross-validated linear-probe metrics and the silhouette score of real vs fake on the items ``rows``.

    Folds are stratified by class folder (each generator spread over every fold); ``folds`` is capped by the
    smallest class. Each fold's probe is ``core.fit_probe`` (class-balanced logistic regression on
    standardized features), so a re-run reuses it from ``cache``.
    """
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import StratifiedKFold

    y = sub.labels(rows)
    strata = np.asarray(sub.generator_of(rows))
    k = int(min(folds, min(Counter(strata.tolist()).values())))
    scores = np.zeros(len(rows), dtype=np.float64)
    fold_acc = []
    x = feats.values
    for f, (tr, te) in enumerate(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(rows, strata)):
        cancel.check()
        probe = core.fit_probe(feats, sub, rows[tr], seed=seed, cache=cache)
        scores[te] = probe.scores(x[torch.as_tensor(rows[te])].numpy())
        fold_acc.append(float(((scores[te] > 0.5).astype(int) == y[te]).mean()))
        progress(done + f + 1, total, "linear probes (cross-validated)")
    m = core.score_metrics(y, scores)
    sil = float(silhouette_score(x[torch.as_tensor(rows)].double().numpy(), y, metric="euclidean"))
    n_fake = int(y.sum())
    n_real = len(y) - n_fake
    return {"n_a": n_real, "n_b": n_fake, "folds": k,
            "probe_accuracy": m["accuracy"], "probe_accuracy_std": float(np.std(fold_acc, ddof=1)),
            "probe_balanced_accuracy": m["balanced_accuracy"], "probe_ap": m["ap"],
            "chance_accuracy": max(n_real, n_fake) / len(y), "silhouette": sil}


# -- thumbnails -------------------------------------------------------------------------------------------------
def _png_uri(path: Path, side: int) -> str:
    """The image at ``path`` as a ``side`` x ``side`` PNG data URI (shorter side resized, centre crop)."""
    from detectlab.data import load_tensor, to_pil

    buf = io.BytesIO()
    to_pil(load_tensor(path, side)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def thumbnail_of(result: ExperimentResult, point_index: int, size: int = 128) -> str:
    """The image of point ``point_index`` (its ``index`` in the ``points`` table, the 4th field of its
    ``customdata``) as a PNG data URI: read from the data set at ``size`` pixels, or, when the file is gone,
    the thumbnail the figure carries ("" if it carries none).

    Raises:
        IndexError: no such point.
    """
    points = result.tables.get("points", [])
    if not 0 <= int(point_index) < len(points):
        raise IndexError(f"no point {point_index}; the map has {len(points)}")
    row = points[int(point_index)]
    path = Path(result.params["data"]).expanduser() / row["file"]
    try:
        return _png_uri(path, int(size))
    except (OSError, DetectLabError):
        fig = result.figures.get("tsne")
        for trace in getattr(fig, "data", ()):
            for cd in trace.customdata if trace.customdata is not None else ():
                if int(cd[3]) == int(point_index):
                    return str(cd[2])
        return ""


#: A JavaScript function that makes a plotly graph div show each point's image beside the pointer on hover
#: (the point's ``customdata``: [file, class, PNG data URI, index]); used by the HTML card and the tab.
HOVER_ATTACH_JS = """
function detectlabAttachHover(gd) {
  if (!gd || !gd.on || gd.detectlabHover) { return; }
  gd.detectlabHover = true;
  var box = document.getElementById('exp-hover-image');
  if (!box) {
    box = document.createElement('div');
    box.id = 'exp-hover-image';
    box.style.cssText = 'position:fixed;display:none;pointer-events:none;z-index:1000;background:#fff;' +
                        'border:1px solid #888;padding:3px;font:11px sans-serif;color:#000';
    var im = document.createElement('img');
    im.style.cssText = 'display:block;width:96px;height:96px;image-rendering:pixelated';
    box.appendChild(im); box.appendChild(document.createElement('div'));
    document.body.appendChild(box);
  }
  gd.on('plotly_hover', function (ev) {
    var p = ev.points[0], cd = p.customdata;
    if (!cd || !cd[2] || String(cd[2]).indexOf('data:image/png;base64,') !== 0) { return; }
    box.firstChild.src = cd[2]; box.lastChild.textContent = cd[0];
    var e = ev.event || {clientX: 0, clientY: 0};
    box.style.left = (e.clientX + 16) + 'px'; box.style.top = (e.clientY + 16) + 'px';
    box.style.display = 'block';
  });
  gd.on('plotly_unhover', function () { box.style.display = 'none'; });
}
"""

#: A plotly ``post_script`` for ``Figure.to_html``/``write_html`` (the HTML card): the hover on the map's own
#: div (plotly fills ``{plot_id}``).
HOVER_IMAGE_JS = HOVER_ATTACH_JS + "detectlabAttachHover(document.getElementById('{plot_id}'));\n"


def embedding_html(fig, include_plotlyjs: bool | str = True) -> str:
    """The map as an HTML fragment that shows each point's image on hover (``HOVER_IMAGE_JS``)."""
    return fig.to_html(full_html=False, include_plotlyjs=include_plotlyjs, post_script=HOVER_IMAGE_JS)


# -- the run ----------------------------------------------------------------------------------------------------
def _r4(v) -> float | None:
    return None if v is None else round(float(v), 4)


def run_embeddings(params: dict, progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
                   cache: ProbeCache | None = None) -> ExperimentResult:
    """A t-SNE map of real and every generator's images in a backbone's (or detector's) feature space, with
    the separability of real vs fake beside it.

    Tables: ``separability`` (one row per class pair: real vs all generators, then real vs each generator:
    ``{a, b, n_a, n_b, folds, probe_accuracy, probe_accuracy_std, probe_balanced_accuracy, probe_ap,
    chance_accuracy, silhouette, features}``) and ``points`` (``{index, class, file, x, y}``, the map's
    coordinates; ``file`` relative to ``data``). Figures: ``tsne`` (one trace per class; ``customdata`` per
    point = [file, class, PNG data URI or "", index]) and ``separability`` (bars).

    Raises:
        DatasetError / ExperimentError: as ``check_embeddings``.
    """
    from threadpoolctl import threadpool_limits

    from detectlab.experiments.embeddings_plots import separability_figure, tsne_figure

    start = time.perf_counter()
    p = _settings(params)
    cache = cache if cache is not None else ProbeCache()
    hits0, fits0 = cache.hits, cache.fits
    data, rows = _load(p)
    timings = {"load": round(time.perf_counter() - start, 3)}
    cancel.check()
    sub, feats, what = _features(p, data, rows, progress, cancel)
    timings["features"] = round(feats.seconds, 3)
    names = np.asarray(sub.generator_of(np.arange(len(sub.items))))
    classes = [REAL, *sub.generators]

    t0 = time.perf_counter()
    cancel.check()
    progress(0, 1, "t-SNE")
    xy = tsne_map(feats.values.double().numpy(), p["seed"], p["perplexity"], p["iterations"])
    progress(1, 1, "t-SNE")
    timings["tsne"] = round(time.perf_counter() - t0, 3)

    t0 = time.perf_counter()
    everything = np.arange(len(sub.items))
    pairs = [(ALL_FAKES, everything)] + [(g, np.flatnonzero((names == REAL) | (names == g))) for g in sub.generators]
    total = sum(int(min(p["folds"], min(Counter(names[r].tolist()).values()))) for _, r in pairs)
    table, done = [], 0
    for b, r in pairs:
        with threadpool_limits(1):   # small fits: BLAS threads only add contention on shared cores
            s = separability(feats, sub, r, p["folds"], p["seed"], cache, progress, done, total, cancel)
        done += s["folds"]
        table.append({"a": REAL, "b": b, **{k: (_r4(v) if isinstance(v, float) else v) for k, v in s.items()},
                      "features": what})
    timings["probes"] = round(time.perf_counter() - t0, 3)

    t0 = time.perf_counter()
    files = [i.path.relative_to(sub.root).as_posix() if i.path.is_relative_to(sub.root) else i.path.name
             for i in sub.items]
    thumbs = []
    for k, item in enumerate(sub.items):
        if k % 64 == 0:
            cancel.check()
            progress(k, len(sub.items), "thumbnails")
        thumbs.append(_png_uri(item.path, p["thumbnail"]) if p["thumbnail"] else "")
    timings["thumbnails"] = round(time.perf_counter() - t0, 3)
    points = [{"index": k, "class": str(names[k]), "file": files[k], "x": round(float(xy[k, 0]), 3),
               "y": round(float(xy[k, 1]), 3)} for k in range(len(sub.items))]
    timings["total"] = round(time.perf_counter() - start, 3)

    where = f"{data.root.name}, {'every split' if p['split'] == 'all' else p['split'] + ' split'}"
    return ExperimentResult(
        name="embeddings", params=p, tables={"separability": table, "points": points},
        figures={"tsne": tsne_figure(points, thumbs, classes, f"t-SNE of {what}: {where}"),
                 "separability": separability_figure(table)},
        summary=_summary(table, what, where),
        timings=timings, data_fingerprint=data.fingerprint,
        models={"fitted": cache.fits - fits0, "reused": cache.hits - hits0},
        notes=[f"Features: {what}.",
               "The map is a t-SNE (scikit-learn, Barnes-Hut, PCA init, PCA to 50 dimensions first); UMAP, which "
               "[DFwF] shows, is not installed. Distances on the map are not faithful; the separability table is "
               "measured in the feature space.",
               f"Linear probe: the CPU path's logistic regression, {p['folds']}-fold stratified cross-validation "
               "(capped by the smallest class), out-of-fold scores."])


def _summary(table: list[dict], what: str, where: str) -> str:
    pooled, per = table[0], table[1:]
    parts = [f"On {where} ({pooled['n_a']} real, {pooled['n_b']} fake images; {what}), a linear probe tells "
             f"real from fake with {100 * pooled['probe_balanced_accuracy']:.1f}% balanced accuracy "
             f"({pooled['folds']}-fold cross-validated; chance 50%); silhouette of real vs fake "
             f"{pooled['silhouette']:.2f}."]
    if per:
        ranked = sorted(per, key=lambda r: -r["probe_balanced_accuracy"])
        parts.append("Per generator (balanced accuracy, silhouette): "
                     + ", ".join(f"{r['b']} {100 * r['probe_balanced_accuracy']:.1f}% / {r['silhouette']:.2f}"
                                 for r in ranked) + ".")
        strong = [r["b"] for r in per if r["probe_balanced_accuracy"] >= 0.9]
        partial = [r["b"] for r in per if 0.7 <= r["probe_balanced_accuracy"] < 0.9]
        weak = [r["b"] for r in per if r["probe_balanced_accuracy"] < 0.7]
        if len(strong) == len(per):
            parts.append("As in [DFwF] §4.2, these features keep every generator's images linearly apart from "
                         "real ones (balanced accuracy at least 90%).")
        else:
            said = []
            if strong:
                said.append(f"{', '.join(strong)} linearly apart from real images (at least 90%, as [DFwF] §4.2 "
                            "shows for GANs)")
            if partial:
                said.append(f"{', '.join(partial)} only partly apart (70-90%)")
            if weak:
                said.append(f"{', '.join(weak)} mixed with real images (below 70%)")
            parts.append("These features keep " + "; ".join(said) + ".")
    if pooled["silhouette"] < 0.1 and pooled["probe_balanced_accuracy"] >= 0.8:
        parts.append("The classes do not form separate clusters (low silhouette) yet a linear probe separates them: "
                     "the difference lies along a few feature directions, which a 2-D map may not show.")
    return " ".join(parts)
