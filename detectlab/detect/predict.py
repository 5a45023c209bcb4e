"""Scoring files with a detector: per-file P(fake), and metrics when the folder has labels."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from detectlab.data import DetectionDataset, PathList, discover, is_image_file
from detectlab.data.splits import probe_for_split
from detectlab.errors import DatasetError, DetectLabError
from detectlab.models import Detector
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress


@dataclass(slots=True)   # 100k of them in an eval: a third of the memory of a dict per object
class Prediction:
    file: str
    p_fake: float | None         # None when the file could not be read
    decision: str                # "fake" | "real" | "error"
    error: str = ""
    label: int | None = None     # ground truth when known
    generator: str | None = None
    p_calibrated: float | None = None    # temperature-scaled P(fake), when the checkpoint has trust statistics
    unlike_training: bool | None = None  # features beyond the validation 99th percentile of the training data
    ood_distance: float | None = None    # the feature distance behind that flag, and its threshold (as /detect gives them)
    ood_threshold: float | None = None
    p_fake_tiles: float | None = None    # native-resolution tiles, for an image large enough to be scored both ways
    verdict: str = ""                    # "fake" | "real" | "uncertain" (``detect.verdict``) | "error"
    reasons: tuple[str, ...] = ()        # why the verdict is uncertain


def _image_files(folder: Path) -> list[str]:
    """Image files below ``folder`` (as strings), as ``rglob("*")`` finds them (hidden ones too, links to files
    followed, links to folders not entered) but with ``os.scandir``: no ``stat`` for an entry whose type the
    folder listing gives, so 100k files list in a fraction of a second."""
    out: list[str] = []
    stack = [os.fspath(folder)]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                entries = list(it)
        except OSError:
            continue
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                stack.append(e.path)
            elif is_image_file(e.name) and e.is_file():
                out.append(e.path)
    return sorted(out, key=_path_order)


def _path_order(name: str) -> list[str]:
    """Sort key that orders path strings as ``Path`` objects order (part by part: "a/b" before "a-c/x")."""
    return name.split(os.sep)


def expand_inputs(paths: list[str | Path]) -> PathList:
    """Files as given, folders expanded to their image files (sorted, recursively); read as ``Path``s, kept as
    strings (100k ``Path`` objects were ~50 MB of a 100k-file ``predict``'s peak)."""
    out: list[str] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += _image_files(p)
        else:
            out.append(os.fspath(p))
    return PathList(out)


def predict_files(detector: Detector, files: list[Path], threshold: float = 0.5, batch_size: int = 32,
                  progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
                  trust=None, both_ways: bool = False, workers: int | None = None) -> list[Prediction]:
    """P(fake) for each file; unreadable files get a Prediction with the reason, never an exception.

    With ``trust`` (``detectlab.detect.trust.Trust`` of this checkpoint) each prediction also gets
    the calibrated P(fake) and the "unlike the training data" flag, from the same forward pass
    (penultimate features, then the head). With ``both_ways`` an image large enough for the two
    scoring paths to disagree (``detect.verdict.scores_both_ways``) is also scored tile by tile at
    its own resolution. Each prediction carries the verdict ``detect.verdict.decide`` gives: the
    Detect tab's and ``/detect``'s. The list of ``iter_predictions``.
    """
    return list(iter_predictions(detector, files, threshold, batch_size, progress, cancel, trust, both_ways,
                                 workers))


@torch.no_grad()
def iter_predictions(detector: Detector, files: list[Path], threshold: float = 0.5, batch_size: int = 32,
                     progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
                     trust=None, both_ways: bool = False, workers: int | None = None) -> Iterator[Prediction]:
    """``predict_files``' predictions one by one, in the order of ``files``, as their batch is scored.

    Files are decoded by a DataLoader's worker processes (``data.torchdata.fitted_batches``) while the
    detector scores the previous batch, on the detector's device (``config.device()``; mixed precision
    on CUDA only); memory holds a few batches whatever the number of files, so a caller that writes
    each prediction away (``predict --csv``) scores 100k files in flat memory.
    """
    from detectlab.data.torchdata import fitted_batches
    from detectlab.detect.tiling import score_file_tiled
    from detectlab.detect.verdict import decide, scores_both_ways
    from detectlab.models.base import model_device

    detector.eval()
    device = model_device(detector)
    cuda = device.type == "cuda"
    done = 0
    for batch in fitted_batches(files, detector.preprocess.input_size, batch_size, workers, pin_memory=cuda):
        cancel.check()
        scored: dict[int, Prediction] = {i: Prediction(str(files[i]), None, "error", err, verdict="error")
                                         for i, err in batch.errors.items()}
        if batch.images is not None:
            x = batch.images.to(device, non_blocking=True)
            with torch.autocast("cuda", dtype=torch.float16, enabled=cuda):
                if trust is not None:
                    from detectlab.detect.trust import features_and_logits

                    feats, logits = features_and_logits(detector, x)
                    assessed = trust.assess(feats.float().cpu(), logits.float().cpu())
                else:
                    logits, assessed = detector(x).reshape(-1), [None] * len(batch.ok)
            scores = torch.sigmoid(logits.float()).tolist()
            for i, (w, h), s, a in zip(batch.ok, batch.sizes, scores, assessed):
                p_tiles = None
                if both_ways and scores_both_ways(h, w, detector.preprocess.input_size):
                    cancel.check()
                    try:
                        p_tiles = score_file_tiled(detector, files[i]).p_fake
                    except DetectLabError:  # decoded once already: only a second decode's memory can fail
                        p_tiles = None
                v = decide(float(s), p_tiles, threshold, assessment=a)
                scored[i] = Prediction(str(files[i]), float(s), "fake" if s > threshold else "real",
                                       p_calibrated=None if a is None else a.p_calibrated,
                                       unlike_training=None if a is None else a.unlike_training,
                                       ood_distance=None if a is None else a.ood_distance,
                                       ood_threshold=None if a is None else a.ood_threshold,
                                       p_fake_tiles=p_tiles, verdict=v.label, reasons=v.reasons)
        for i in batch.positions:
            yield scored[i]
        done += len(batch.positions)
        progress(done, len(files), "score images")


def evaluate_samples(detector: Detector, samples, threshold: float = 0.5, progress: Progress = null_progress,
                     cancel: CancelToken = NEVER_CANCEL, trust=None, both_ways: bool = False):
    """Score labelled samples and compute the metrics (on the resize path's P(fake)), per generator;
    returns (predictions, metrics). ``trust`` and ``both_ways`` as in ``predict_files``."""
    from detectlab.eval import binary_metrics

    preds = predict_files(detector, [s.path for s in samples], threshold, progress=progress, cancel=cancel,
                          trust=trust, both_ways=both_ways)
    for p, s in zip(preds, samples):
        p.label, p.generator = s.label, s.generator
    ok = [p for p in preds if p.p_fake is not None]
    metrics = binary_metrics(np.array([p.label for p in ok]), np.array([p.p_fake for p in ok]),
                             threshold=threshold, groups=[p.generator for p in ok])
    return preds, metrics


#: The parts of a folder a batch can be scored on: every image, or one part of ``detectlab.data.split``'s
#: 80/10/10 split by source group (the split ``detectlab train`` and the shipped detectors use).
SPLITS = ("all", "train", "val", "test")


@dataclass
class Selection:
    """Which of a folder's images were scored, and why: metrics are only comparable on the same split."""

    split: str           # one of SPLITS
    seed: int
    n_selected: int
    n_folder: int
    reason: str

    def describe(self) -> str:
        """E.g. ``test split (seed 0): 25 of 252 images — <reason>``."""
        what = (f"all {self.n_folder} images" if self.split == "all"
                else f"{self.split} split (seed {self.seed}): {self.n_selected} of {self.n_folder} images")
        return f"{what} — {self.reason}" if self.reason else what


def is_demo_set(root: str | Path) -> bool:
    """Whether ``root`` is one of the demo sets the shipped detectors were trained on (train/val splits)."""
    from detectlab import config

    return Path(root).resolve() in (config.DEMO_DIR.resolve(), config.DEMO_INPAINT_DIR.resolve())


def default_split(root: str | Path | None) -> str:
    """``test`` for a demo set (its train and val splits trained the shipped detectors), else ``all``."""
    return "test" if root and is_demo_set(root) else "all"


def select_split(samples: list, split_name: str | None, seed: int = 0, reason: str = "") -> tuple[list, Selection]:
    """The samples of one split (``all`` or None: every sample), with a ``Selection`` saying so."""
    from detectlab.data import split

    name = split_name or "all"
    if name not in SPLITS:
        raise DatasetError(f"unknown split '{name}': choose one of {', '.join(SPLITS)}")
    chosen = list(samples) if name == "all" else split(samples, seed=seed)[name]
    if not reason:
        reason = ("every image of the folder, whatever split trained a detector" if name == "all" else
                  f"the {name} part of the 80/10/10 split by source group that `detectlab train` makes")
    return chosen, Selection(name, seed, len(chosen), len(samples), reason)


def evaluate_dataset(detector: Detector, root: str | Path, threshold: float = 0.5, split_name: str | None = None,
                     seed: int = 0, progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
                     reason: str = "", trust=None, both_ways: bool = False):
    """Score a labelled data set (optionally one split of it) and compute the metrics, per generator.

    Returns (predictions, metrics, Selection). ``trust`` and ``both_ways`` as in ``predict_files``.
    """
    ds = discover(root, validate=probe_for_split(split_name))
    if not isinstance(ds, DetectionDataset):
        raise DatasetError(f"{root}: evaluation needs a real/fake data set, not {ds.layout}")
    return _evaluate_split(detector, ds, threshold, split_name, seed, progress, cancel, reason, trust, both_ways)


def _evaluate_split(detector, ds: DetectionDataset, threshold, split_name, seed, progress, cancel, reason,
                    trust=None, both_ways=False):
    samples, selection = select_split(ds.samples, split_name, seed, reason)
    if not samples:
        raise DatasetError(f"{Path(ds.root).name}: the {selection.split} split holds no images "
                           f"({selection.n_folder} in the folder); choose another split or all")
    return (*evaluate_samples(detector, samples, threshold, progress, cancel, trust, both_ways), selection)


def score_folder(detector: Detector, root: str | Path, threshold: float = 0.5, progress: Progress = null_progress,
                 cancel: CancelToken = NEVER_CANCEL, split_name: str | None = None, seed: int = 0,
                 reason: str = "", trust=None, both_ways: bool = False):
    """The images of a folder (optionally one split of it); with metrics when its layout gives real/fake labels.

    Returns (predictions, metrics or None, Selection). A folder in no labelled layout (or an
    images/masks set) is still scored, every image, file by file, with unreadable files
    reported; it has no splits, and the Selection says so. ``trust`` and ``both_ways`` as in
    ``predict_files``.
    """
    try:
        ds = discover(root, validate=probe_for_split(split_name))
    except DatasetError:
        ds = None
    if isinstance(ds, DetectionDataset):
        return _evaluate_split(detector, ds, threshold, split_name, seed, progress, cancel, reason, trust,
                               both_ways)
    files = expand_inputs([root])
    why = "not in a real/fake layout, so no splits: every image scored"
    return (predict_files(detector, files, threshold, progress=progress, cancel=cancel, trust=trust,
                          both_ways=both_ways), None,
            Selection("all", seed, len(files), len(files), why))


def scoring_options(loaded) -> dict:
    """How every entry point scores files with a loaded detector (``catalog.LoadedDetector``): at its
    threshold, with its trust statistics, large images both ways. The app's batch and ``detectlab predict``
    / ``eval`` pass these to ``predict_files``, ``score_folder`` or ``evaluate_dataset``, so their
    predictions (and CSVs) are the same."""
    return {"threshold": loaded.threshold, "trust": loaded.trust, "both_ways": True}


def score_files(loaded, files: list[Path], progress: Progress = null_progress,
                cancel: CancelToken = NEVER_CANCEL) -> list[Prediction]:
    """``predict_files`` with ``scoring_options(loaded)``: the app's batch of uploads."""
    return list(iter_scores(loaded, files, progress, cancel))


def iter_scores(loaded, files: list[Path], progress: Progress = null_progress,
                cancel: CancelToken = NEVER_CANCEL) -> Iterator[Prediction]:
    """``iter_predictions`` with ``scoring_options(loaded)``: ``detectlab predict``'s stream, scored as the app's
    batch is."""
    return iter_predictions(loaded.detector, files, progress=progress, cancel=cancel, **scoring_options(loaded))


#: The columns of a predictions CSV, the app's and the CLI's. ``p_fake`` and ``decision`` are the resize
#: path's (what the metrics use); ``p_fake_tiles`` is filled for images scored both ways; ``verdict`` is
#: ``detect.verdict``'s (uncertain when the paths disagree or the image is unlike the training data).
CSV_COLUMNS = ("file", "p_fake", "decision", "detector", "label", "generator", "error", "p_fake_calibrated",
               "unlike_training", "p_fake_resize", "p_fake_tiles", "verdict", "verdict_reasons")


def written_files(path: str | Path, detector_name: str) -> set[str]:
    """The files a predictions CSV at ``path`` already holds for ``detector_name`` (empty when there is no file).

    A row cut short by an interruption is dropped from the file, so appending continues from whole rows. A CSV
    of another detector, or not a predictions CSV, is refused: resuming into it would mix two detectors' scores.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return set()
    with path.open(newline="") as fh:
        text = fh.read()
    lines = text.splitlines(keepends=True)
    rows = list(csv.reader(lines))
    if not rows or tuple(rows[0]) != CSV_COLUMNS:
        raise DetectLabError(f"{path.name} exists and is not a DetectLab predictions CSV; choose another --csv path")
    if not text.endswith(("\n", "\r")) or len(rows[-1]) != len(CSV_COLUMNS):  # cut short: drop the partial row
        with path.open("w", newline="") as fh:
            fh.write("".join(lines[:-1]))
        rows = rows[:-1]
    col = CSV_COLUMNS.index("detector")
    others = {r[col] for r in rows[1:] if r[col] != detector_name}
    if others:
        raise DetectLabError(f"{path.name} holds scores of {', '.join(sorted(others))}, not {detector_name}; "
                             "choose another --csv path to score with this detector")
    return {r[0] for r in rows[1:]}


def write_csv(preds: list[Prediction], path: str | Path, detector_name: str = "", append: bool = False) -> Path:
    """Write (or, with ``append``, add to) a predictions CSV with ``CSV_COLUMNS``."""
    from detectlab.eval.tables import write_rows_csv

    rows = ({"file": p.file, "p_fake": p.p_fake, "decision": p.decision, "detector": detector_name, "label": p.label,
             "generator": p.generator or "", "error": p.error, "p_fake_calibrated": p.p_calibrated,
             "unlike_training": p.unlike_training, "p_fake_resize": p.p_fake, "p_fake_tiles": p.p_fake_tiles,
             "verdict": p.verdict, "verdict_reasons": "; ".join(p.reasons)} for p in preds)
    return write_rows_csv(rows, path, header=CSV_COLUMNS, float_format=".6f", append=append)


def write_heatmaps(detector: Detector, files: list[Path], out_dir: str | Path, threshold: float = 0.5,
                   method: str = "gradcam", opacity: float = 0.5, progress: Progress = null_progress,
                   cancel: CancelToken = NEVER_CANCEL) -> list[Path]:
    """Save a heatmap overlay PNG per readable file (``<stem>_<target>.png``); returns the paths."""
    from detectlab.detect.analyze import analyze_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, f in enumerate(files):
        cancel.check()
        try:
            a = analyze_file(detector, f, threshold, method)
        except DetectLabError:
            continue  # reported in the predictions already
        for k, (img, name) in enumerate(a.overlays(opacity)):
            path = out / f"{Path(f).stem}_{k}_{a.decision}_{a.p_fake:.3f}.png"
            img.save(path)
            written.append(path)
        progress(i + 1, len(files), "heatmaps")
    return written
