"""Calibration and format audit of one detector on a labelled folder.

Four questions a researcher asks of a score before trusting it:

* **Is P(fake) calibrated?** A reliability diagram and the expected calibration error (ECE) of P(fake)
  on the chosen split, and of the temperature-scaled P(fake) when the checkpoint carries trust statistics
  (``detectlab calibrate``; ``detect.trust``). The ECE here is *binary* calibration of P(fake) against the
  label (see :func:`reliability`): ten equal-width bins of P(fake) over [0, 1], and in each bin the mean
  P(fake) against the share of fakes. It is not the top-label ECE that ``detect.trust`` stores for the
  validation split (bins of max(p, 1 - p) over [0.5, 1], Guo et al. 2017 eq. 3); the two agree only when
  the detector is perfectly calibrated.
* **How much does the threshold cost?** Accuracy at the checkpoint's threshold against accuracy at the
  best threshold chosen on the same test images (UnivFD's "oracle" threshold, Ojha et al. 2023,
  ``eval.metrics.best_threshold``). The oracle sees the labels it is scored on, so it is an optimistic
  upper bound, and the table and figure say so.
* **How often are real photos called fake?** The false-positive rate on a real-only folder: by default
  the held-out real photographs the project ships (``assets/heldout``: whole-size photos on the resize
  path and their 128 px crops), from packages the demo never reads.
* **Does it key on the format?** The same test images re-saved as JPEG 95, JPEG 75, PNG (a lossless round
  trip: the same pixels, a control) and resized 0.5x (antialiased, saved as PNG), in memory, and scored
  again: per class the mean change in P(fake) and the share of decisions flipped. A detector that learned
  "no compression means fake" moves JPEG-saved fakes towards real ([Petrželková 2024] §4.3.2 and Fig. 4.6
  measure accuracy under JPEG, with and without JPEG-compressed samples in training).

Every image is scored as the Detect tab's resize path scores a file (``detect.predict.predict_files``:
the project's decoder, shorter side to the input size, centre crop, the checkpoint's threshold).
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detectlab import config
from detectlab.errors import DatasetError, DetectLabError
from detectlab.experiments.core import REAL, ExperimentResult, Item, LabelledSet, ProbeCache, load_set, score_metrics
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress

NAME = "calibration"
#: Equal-width bins of P(fake) of the reliability diagram and the ECE.
N_BINS = 10
#: The re-saves of the format audit: key -> (label, how the pixels are stored again).
FORMATS = {
    "jpeg95": "JPEG 95",
    "jpeg75": "JPEG 75",
    "png": "PNG (lossless)",
    "resize0.5": "resized 0.5× (antialiased)",
}
#: The held-out real photos the project ships (``real_folder`` "heldout").
HELDOUT = "heldout"
#: A mean change in P(fake) (or a share of flipped decisions) of a class at or above this under one re-save
#: is read as "the detector keys on the format".
KEYS_ON_FORMAT = 0.10
#: Images re-saved and scored at a time in the format audit.
AUDIT_CHUNK = 64
SPLITS = ("all", "train", "val", "test")


def defaults_calibration() -> dict:
    """Every setting of the calibration experiment with its default.

    ``detector``: a shipped name (``cnn-resnet18``) or a run id; ``data``: a labelled folder; ``split``:
    which part of the 80/10/10 split by source group is scored (``seed`` is its seed, as training's);
    ``limit``: at most this many images per class (real, fake; fakes spread evenly over the generators,
    seeded), None for all; ``real_folder``: ``"heldout"`` (the shipped held-out photos), a folder of real
    images, or ``""`` for none; ``bins``: bins of the reliability diagram; ``formats``: the re-saves of the
    format audit (keys of ``FORMATS``)."""
    return {"data": str(config.DEMO_DIR), "detector": "cnn-resnet18", "split": "test", "limit": None, "seed": 0,
            "real_folder": HELDOUT, "bins": N_BINS, "formats": list(FORMATS)}


# -- calibration numbers ---------------------------------------------------------------------------
@dataclass
class Reliability:
    """The reliability diagram of P(fake) and its ECE.

    ``bins``: one dict per bin: ``bin``, ``lo``, ``hi``, ``n``, ``mean_p_fake`` (conf_b) and
    ``fraction_fake`` (acc_b), both None for an empty bin, and ``gap`` = acc_b - conf_b."""

    bins: list[dict]
    ece: float
    n: int

    @property
    def overconfidence(self) -> float:
        """Count-weighted mean of |conf_b - 0.5| - |acc_b - 0.5|: > 0 when P(fake) is more extreme than the
        share of fakes it stands for (overconfident), < 0 when it is less (underconfident)."""
        total = sum(b["n"] * (abs(b["mean_p_fake"] - 0.5) - abs(b["fraction_fake"] - 0.5))
                    for b in self.bins if b["n"])
        return total / self.n if self.n else 0.0


def reliability(p_fake, labels, bins: int = N_BINS) -> Reliability:
    """Binary calibration of P(fake) against 0/1 labels (1 = fake) over ``bins`` equal-width bins of [0, 1].

    Bin b holds the images with b / bins <= P(fake) < (b + 1) / bins (P(fake) = 1 in the last bin; the bin
    index is ``min(floor(P * bins), bins - 1)``). With n_b images in bin b of N, conf_b their mean P(fake)
    and acc_b the share of them that are fake,

        ECE = sum_b (n_b / N) * |acc_b - conf_b|      (empty bins add nothing).

    This is Guo et al. 2017's eq. 3 applied to the positive class's probability rather than to the
    top-label confidence.
    """
    p = np.asarray(p_fake, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if p.shape != y.shape or p.size == 0:
        raise ValueError(f"need equally many probabilities and labels (at least one), got {p.size} and {y.size}")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError("P(fake) must lie in [0, 1]")
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    idx = np.minimum(np.floor(p * bins).astype(np.int64), bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        inside = idx == b
        n_b = int(inside.sum())
        conf = float(p[inside].mean()) if n_b else None
        acc = float(y[inside].mean()) if n_b else None
        if n_b:
            ece += n_b / p.size * abs(acc - conf)
        rows.append({"bin": b, "lo": b / bins, "hi": (b + 1) / bins, "n": n_b, "mean_p_fake": conf,
                     "fraction_fake": acc, "gap": None if not n_b else acc - conf})
    return Reliability(rows, float(ece), int(p.size))


def threshold_rows(labels, p_fake, threshold: float) -> list[dict]:
    """Accuracy at the checkpoint's ``threshold`` and at the best threshold on the same images (the oracle,
    marked ``optimistic``); both with the rule "fake iff P(fake) > threshold"."""
    from detectlab.eval.metrics import best_threshold

    y, p = np.asarray(labels), np.asarray(p_fake, dtype=np.float64)
    best, _ = best_threshold(y, p, prefer=threshold)
    rows = []
    for rule, t, optimistic in (("checkpoint's threshold", threshold, False),
                                ("best threshold on this test data (oracle)", best, True)):
        m = score_metrics(y, p, threshold=t)
        rows.append({"threshold_rule": rule, "threshold": _r(t), "accuracy": _r(m["accuracy"]),
                     "balanced_accuracy": _r(m["balanced_accuracy"]), "real_accuracy": _r(m.get("real_accuracy")),
                     "fake_accuracy": _r(m.get("fake_accuracy")), "n": int(m["n"]), "optimistic": optimistic})
    return rows


# -- scoring -----------------------------------------------------------------------------------------
def _load_detector(name: str):
    """The detector called ``name`` (``catalog.load_detector``); tests put a stand-in here."""
    from detectlab import catalog

    return catalog.load_detector(name)


def _resolve_detector(name: str) -> Path:
    from detectlab import catalog

    return catalog.resolve_detector(name)


def score_sources(loaded, sources: list, progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
                  desc: str = "score images") -> tuple[np.ndarray, np.ndarray | None]:
    """P(fake) of each source (a file path or an in-memory encoded image) on the Detect tab's resize path
    (``detect.predict.predict_files`` at the checkpoint's threshold, with its trust statistics), and the
    calibrated P(fake) when the checkpoint has them (else None). An unreadable source gets NaN."""
    from detectlab.detect.predict import predict_files

    def report(done, total=None, _desc=""):
        progress(done, total, desc)

    preds = predict_files(loaded.detector, sources, threshold=loaded.threshold, progress=report, cancel=cancel,
                          trust=loaded.trust, both_ways=False)
    p = np.asarray([np.nan if q.p_fake is None else q.p_fake for q in preds], dtype=np.float64)
    if loaded.trust is None:
        return p, None
    cal = np.asarray([np.nan if q.p_calibrated is None else q.p_calibrated for q in preds], dtype=np.float64)
    return p, cal


def resave(path: str | Path, fmt: str) -> io.BytesIO:
    """The image at ``path`` (decoded as the project decodes: EXIF orientation applied, RGB) stored again in
    memory as ``fmt`` (a key of ``FORMATS``): JPEG at quality 95 or 75 (4:2:0, Pillow's default), PNG, or
    resized to half its width and height (Lanczos, antialiased) and stored as PNG."""
    from PIL import Image

    from detectlab.data.decode import load_image

    img = load_image(path)
    buf = io.BytesIO()
    if fmt in ("jpeg95", "jpeg75"):
        img.save(buf, format="JPEG", quality=int(fmt[4:]))
    elif fmt == "png":
        img.save(buf, format="PNG")
    elif fmt == "resize0.5":
        w, h = img.size
        img.resize((max(1, round(w / 2)), max(1, round(h / 2))), Image.Resampling.LANCZOS).save(buf, format="PNG")
    else:
        raise ValueError(f"unknown format '{fmt}': choose from {', '.join(FORMATS)}")
    buf.seek(0)
    return buf


def audit_rows(labels: np.ndarray, base: np.ndarray, after: dict[str, np.ndarray], threshold: float) -> list[dict]:
    """Per re-save and class: mean P(fake) before and after, the mean change (after - before), the mean
    absolute change, the share of decisions flipped and the class's accuracy before and after, at
    ``threshold``. Images unreadable either way are left out of their row."""
    rows = []
    for fmt, p in after.items():
        for cls, label in ((REAL, 0), ("fake", 1)):
            ok = (labels == label) & np.isfinite(base) & np.isfinite(p)
            n = int(ok.sum())
            if not n:
                continue
            b, a = base[ok], p[ok]
            correct_b = (b > threshold) == bool(label)
            correct_a = (a > threshold) == bool(label)
            rows.append({"format": FORMATS.get(fmt, fmt), "class": cls, "n": n,
                         "mean_p_fake_before": _r(b.mean()), "mean_p_fake_after": _r(a.mean()),
                         "mean_change": _r((a - b).mean()), "mean_abs_change": _r(np.abs(a - b).mean()),
                         "flipped": _r(((b > threshold) != (a > threshold)).mean()),
                         "accuracy_before": _r(correct_b.mean()), "accuracy_after": _r(correct_a.mean())})
    return rows


def format_sentence(rows: list[dict], limit: float = KEYS_ON_FORMAT) -> str:
    """One plain sentence: whether any re-save moves a class's P(fake) by ``limit`` or more on average (or
    flips that share of its decisions), naming the largest move."""
    if not rows:
        return "No image could be re-saved and scored, so the format audit says nothing."
    top = max(rows, key=lambda r: (abs(r["mean_change"]), r["flipped"]))
    flips = max(rows, key=lambda r: r["flipped"])
    whose = "real images'" if top["class"] == REAL else "fake images'"
    move = (f"{top['format']} moves {whose} P(fake) by {top['mean_change']:+.2f} on average "
            f"and flips {100 * top['flipped']:.0f} % of their decisions")
    move = move[0].upper() + move[1:]
    if abs(top["mean_change"]) >= limit or flips["flipped"] >= limit:
        what = "compression" if "JPEG" in top["format"] else "resolution" if "resized" in top["format"] \
            else "the file format"
        extra = "" if flips is top or flips["flipped"] < limit else \
            f" ({flips['format']} flips {100 * flips['flipped']:.0f} % of the {flips['class']} images' decisions)"
        return f"{move}{extra}: the detector keys on {what}."
    return (f"No re-save moves a class's P(fake) by {limit:.2f} on average or flips {100 * limit:.0f} % of its "
            f"decisions, so the detector does not key on the format (the largest move: {move}).")


# -- the experiment ------------------------------------------------------------------------------------
def _where(split: str) -> str:
    return "the whole folder" if split == "all" else f"the {split} split"


def _r(v, digits: int = 4):
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else round(v, digits)


def _settings(params: dict) -> dict:
    p = {**defaults_calibration(), **(params or {})}
    if not str(p.get("data") or "").strip():
        raise ValueError("no data folder given: calibration needs a labelled folder (real/ and generator folders)")
    if not str(p.get("detector") or "").strip():
        raise ValueError("no detector given: name a shipped detector (e.g. cnn-resnet18) or a run id")
    if p["split"] not in SPLITS:
        raise ValueError(f"unknown split '{p['split']}': choose one of {', '.join(SPLITS)}")
    if p.get("limit") in (0, "", None):
        p["limit"] = None
    elif not str(p["limit"]).isdigit() or int(p["limit"]) < 1:
        raise ValueError(f"limit must be a whole number of images per class (at least 1) or empty, got {p['limit']!r}")
    else:
        p["limit"] = int(p["limit"])
    if not str(p.get("bins", "")).isdigit() or not 2 <= int(p["bins"]) <= 100:
        raise ValueError(f"bins must be a whole number from 2 to 100, got {p.get('bins')!r}")
    p["bins"] = int(p["bins"])
    p["seed"] = int(p.get("seed") or 0)
    formats = list(p.get("formats") or [])
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown format {', '.join(map(str, unknown))}: choose from {', '.join(FORMATS)}")
    p["formats"] = formats
    p["real_folder"] = str(p.get("real_folder") or "").strip()
    return p


def _selection(data: LabelledSet, split: str, limit: int | None, seed: int) -> list[Item]:
    """The items of ``split`` (every split for ``all``), at most ``limit`` per class: fakes taken in turn from
    each generator's seeded shuffle, so a cap keeps the generators balanced."""
    items = [i for i in data.items if split == "all" or i.split == split]
    if limit is None:
        return items
    rng = np.random.default_rng(seed)
    reals = [items[k] for k in rng.permutation(len(items)) if items[k].label == 0] if items else []
    by_gen: dict[str, list[Item]] = {}
    for i in items:
        if i.label == 1:
            by_gen.setdefault(i.generator, []).append(i)
    queues = [[g[k] for k in rng.permutation(len(g))] for _, g in sorted(by_gen.items())]
    fakes: list[Item] = []
    while len(fakes) < limit and any(queues):
        for q in queues:
            if q and len(fakes) < limit:
                fakes.append(q.pop(0))
    chosen = {id(i) for i in reals[:limit] + fakes}
    return [i for i in items if id(i) in chosen]  # the set's order


def _real_sources(real_folder: str) -> list[tuple[str, list]]:
    """The real-only image sets to measure false positives on: (name, files) pairs; [] for none."""
    from detectlab.detect.predict import expand_inputs

    if not real_folder:
        return []
    if real_folder == HELDOUT:
        import json

        from detectlab.heldout import HELDOUT_DIR

        manifest = HELDOUT_DIR / "manifest.json"
        if not manifest.is_file():
            return []
        m = json.loads(manifest.read_text(encoding="utf-8"))
        return [("held-out real photos (full size, resize path)", [HELDOUT_DIR / p["file"] for p in m["photos"]]),
                ("held-out real photos' 128 px crops", [HELDOUT_DIR / "crops" / c["file"] for c in m["crop_files"]])]
    folder = Path(real_folder)
    return [(f"real-only folder {folder.name}", expand_inputs([folder]))]


def check_calibration(params: dict) -> None:
    """Refuse, in one line and without scoring anything, a detector that does not resolve, a folder that is
    not a labelled set with real and fake images in the chosen split, a missing real-only folder, or a bad
    setting.

    Raises:
        DatasetError: the data or the real-only folder cannot be used (the message names what is missing).
        ValueError: a bad setting or an unknown detector (``registry.ExperimentError``).
    """
    from detectlab.experiments.registry import ExperimentError

    p = _settings(params)
    try:
        _resolve_detector(p["detector"])
    except DetectLabError as exc:
        raise ExperimentError(str(exc).splitlines()[0]) from exc
    root = Path(p["data"])
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder; calibration needs a labelled folder (real/ and generator folders)")
    try:
        data = load_set(root, seed=p["seed"], min_generators=0)
    except DatasetError as exc:  # the layouts list after the first line is for the Data tab, not this refusal
        raise DatasetError(str(exc).splitlines()[0]) from exc
    chosen = [i for i in data.items if p["split"] == "all" or i.split == p["split"]]
    n_real = sum(i.label == 0 for i in chosen)
    n_fake = len(chosen) - n_real
    if not n_real or not n_fake:
        where = "the folder" if p["split"] == "all" else f"its {p['split']} split"
        raise DatasetError(f"{root.name}: {where} holds {n_real} real and {n_fake} fake images; calibration "
                           "needs both classes")
    rf = p["real_folder"]
    if rf and rf != HELDOUT:
        folder = Path(rf)
        if not folder.is_dir():
            raise DatasetError(f"{rf}: no such folder for the false-positive rate (give a folder of real images, "
                               f"'{HELDOUT}' for the shipped held-out photos, or leave it empty)")
        if not _real_sources(rf)[0][1]:
            raise DatasetError(f"{folder.name}: no images in the real-only folder")


def run_calibration(params: dict, progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
                    cache: ProbeCache | None = None) -> ExperimentResult:
    """Reliability and ECE, checkpoint vs oracle threshold, false positives on real photos and the format
    audit of ``params["detector"]`` on ``params["data"]`` (see the module docstring and
    ``defaults_calibration``). No probe is fitted (``cache`` is unused: the detector is scored as it is)."""
    from detectlab.experiments.calibration_plots import audit_figure, reliability_figure, thresholds_figure
    from detectlab.heldout import false_positive_rate

    check_calibration(params)
    p = _settings(params)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    loaded = _load_detector(p["detector"])
    threshold = float(loaded.threshold)
    data = load_set(p["data"], seed=p["seed"], min_generators=0)
    items = _selection(data, p["split"], p["limit"], p["seed"])
    timings["load"] = round(time.perf_counter() - start, 3)

    # 1. the split as it is: P(fake) and, with trust statistics, calibrated P(fake)
    t0 = time.perf_counter()
    files = [i.path for i in items]
    labels_all = np.asarray([i.label for i in items], dtype=np.int64)
    base, cal = score_sources(loaded, files, progress, cancel, f"score {_where(p['split'])}")
    ok = np.isfinite(base)
    if not ok.any():
        raise DatasetError(f"{Path(p['data']).name}: none of the {len(items)} selected images could be read")
    y, s = labels_all[ok], base[ok]
    if len(set(y.tolist())) < 2:
        raise DatasetError(f"{Path(p['data']).name}: only {'real' if y[0] == 0 else 'fake'} images of "
                           f"{_where(p['split'])} could be read; calibration needs both classes")
    timings["score"] = round(time.perf_counter() - t0, 3)

    rel = {"P(fake)": reliability(s, y, p["bins"])}
    temperature = getattr(getattr(loaded.trust, "calibration", None), "temperature", None)
    if cal is not None and np.isfinite(cal[ok]).all():
        rel[f"calibrated P(fake) (T = {temperature:.3g})"] = reliability(cal[ok], y, p["bins"])
    calib_rows = [{"score": name, "ece": _r(r.ece), "overconfidence": _r(r.overconfidence), "n": r.n,
                   "bins": p["bins"], "mean_p_fake": _r(np.mean(s if k == 0 else cal[ok])),
                   "fraction_fake": _r(y.mean())}
                  for k, (name, r) in enumerate(rel.items())]
    rel_rows = [{"score": name, **{k: _r(v) if isinstance(v, float) else v for k, v in b.items()}}
                for name, r in rel.items() for b in r.bins]
    thr_rows = threshold_rows(y, s, threshold)

    # 2. false positives on real-only images, beside the split's own reals
    t0 = time.perf_counter()
    fp_rows = [{"set": f"real images of {_where(p['split'])}", "n": int((y == 0).sum()),
                "false_positive_rate": _r(false_positive_rate(s[y == 0], threshold)),
                "mean_p_fake": _r(s[y == 0].mean())}]
    notes = []
    sources = _real_sources(p["real_folder"])
    if p["real_folder"] == HELDOUT and not sources:
        notes.append("the held-out photos (assets/heldout) are not on this machine: no held-out false-positive rate")
    for name, real_files in sources:
        cancel.check()
        q, _ = score_sources(loaded, real_files, progress, cancel, f"score {name}")
        q = q[np.isfinite(q)]
        if q.size:
            fp_rows.append({"set": name, "n": int(q.size), "false_positive_rate": _r(false_positive_rate(q, threshold)),
                            "mean_p_fake": _r(q.mean())})
        if q.size < len(real_files):
            notes.append(f"{name}: {len(real_files) - q.size} unreadable image(s) left out")
    timings["real_only"] = round(time.perf_counter() - t0, 3)

    # 3. the format audit: the same images stored again, scored again
    t0 = time.perf_counter()
    ok_files = [f for f, good in zip(files, ok) if good]
    after: dict[str, np.ndarray] = {}
    for fmt in p["formats"]:
        # a chunk at a time, so a folder of large photos never holds every re-saved file in memory
        scores = []
        for lo in range(0, len(ok_files), AUDIT_CHUNK):
            cancel.check()
            bufs: list = []
            for f in ok_files[lo: lo + AUDIT_CHUNK]:
                try:
                    bufs.append(resave(f, fmt))
                except DetectLabError:
                    bufs.append(b"")  # scored as unreadable: NaN, left out of the row
            scores.append(score_sources(loaded, bufs, cancel=cancel)[0])
            progress(min(lo + AUDIT_CHUNK, len(ok_files)), len(ok_files), f"re-save and score as {FORMATS[fmt]}")
        after[fmt] = np.concatenate(scores) if scores else np.zeros(0)
    audit = audit_rows(y, s, after, threshold)
    sentence = format_sentence(audit)
    timings["format_audit"] = round(time.perf_counter() - t0, 3)

    tables = {"calibration": calib_rows, "reliability": rel_rows, "thresholds": thr_rows,
              "false_positives": fp_rows, "format_audit": audit,
              "detector": [_detector_row(loaded, p["detector"], threshold, temperature)]}
    figures = {"reliability": reliability_figure(rel, title=f"{p['detector']}: reliability on {_where(p['split'])}"),
               "thresholds": thresholds_figure(y, s, thr_rows)}
    if audit:
        figures["format_audit"] = audit_figure(audit, title=f"{p['detector']}: format audit on {_where(p['split'])}")
    if (~ok).any():
        notes.append(f"{int((~ok).sum())} unreadable image(s) of the split left out")
    if p["limit"]:
        notes.append(f"at most {p['limit']} images per class (seed {p['seed']})")
    timings["total"] = round(time.perf_counter() - start, 3)
    return ExperimentResult(
        name=NAME, params=p, tables=tables, figures=figures,
        summary=_summary(p, rel, thr_rows, fp_rows, sentence, audit, threshold,
                         jpeg_training(getattr(loaded, "meta", None))),
        timings=timings, data_fingerprint=data.fingerprint,
        models={"fitted": 0, "reused": 0}, notes=notes)


def _detector_row(loaded, name: str, threshold: float, temperature) -> dict:
    path = Path(getattr(loaded, "path", "") or "")
    try:
        from detectlab.detect.trust import file_sha256

        sha = file_sha256(path)[:16] if path.is_file() else ""
    except OSError:
        sha = ""
    size = getattr(getattr(loaded.detector, "preprocess", None), "input_size", None)
    return {"detector": name, "file": path.name, "sha256": sha, "threshold": _r(threshold), "input_size": size,
            "temperature": _r(temperature), "scoring": "resize path (shorter side to the input, centre crop)"}


def jpeg_training(meta: dict | None) -> str:
    """How a checkpoint's training met JPEG, in words, from its recorded training config: with or without
    JPEG augmentation, and from whose weights when it was fine-tuned (whose own training is not in it)."""
    training = (meta or {}).get("training") or {}
    augment = training.get("augment")
    if not isinstance(augment, dict) or "jpeg_p" not in augment:
        return "whose training augmentation is not recorded"
    init = training.get("init_from") or ""
    if float(augment.get("jpeg_p") or 0) > 0:
        return "trained with JPEG augmentation" + (f", fine-tuned from {init}'s weights" if init else "")
    if init:
        return f"fine-tuned from {init}'s weights without JPEG augmentation of its own"
    return "trained without JPEG augmentation"


def _summary(p, rel, thr_rows, fp_rows, sentence, audit, threshold, trained: str) -> str:
    raw = rel["P(fake)"]
    out = []
    lean = raw.overconfidence
    how = ("well calibrated" if raw.ece < 0.02 else
           "overconfident (P(fake) more extreme than the share of fakes it stands for)" if lean > 0 else
           "underconfident (P(fake) less extreme than the share of fakes it stands for)")
    out.append(f"On {raw.n} images of {_where(p['split'])}, P(fake) has an ECE of {raw.ece:.3f} "
               f"({p['bins']} equal-width bins of P(fake)): {how}.")
    for name, r in rel.items():
        if name != "P(fake)":
            out.append(f"Temperature scaling fitted on the validation split gives the {name} an ECE of {r.ece:.3f}.")
    ck, oracle = thr_rows
    out.append(f"At the checkpoint's threshold {threshold:g} accuracy is {100 * ck['accuracy']:.1f} %; the best "
               f"threshold chosen on these same images ({oracle['threshold']:.3f}) gives "
               f"{100 * oracle['accuracy']:.1f} % — an optimistic upper bound (UnivFD's oracle), since it sees the "
               "labels it is scored on.")
    for row in fp_rows[1:]:
        out.append(f"It calls {100 * row['false_positive_rate']:.1f} % of {row['n']} {row['set']} fake, against "
                   f"{100 * fp_rows[0]['false_positive_rate']:.1f} % of the {fp_rows[0]['set']}.")
    out.append(sentence)
    j75 = [r for r in audit if r["format"] == FORMATS["jpeg75"]]
    if j75:
        n = sum(r["n"] for r in j75)
        before = sum(r["accuracy_before"] * r["n"] for r in j75) / n
        after = sum(r["accuracy_after"] * r["n"] for r in j75) / n
        verdict = "agrees with" if after >= before - 0.05 else "departs from"
        out.append(f"At JPEG 75 accuracy goes from {100 * before:.1f} % to {100 * after:.1f} % for this detector "
                   f"({trained}); this {verdict} [Petrželková 2024] §4.3.2 (Fig. 4.6), whose ResNet-50 is robust to "
                   "JPEG (about 88 % even at quality 10 when JPEG-compressed samples are in its training set).")
    return " ".join(out)
