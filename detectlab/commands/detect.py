"""`detectlab predict` and `detectlab eval`: P(fake) for files, and a checkpoint's metrics on a labelled set."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _print_metrics(metrics: dict) -> None:
    keys = ("n", "accuracy", "balanced_accuracy", "real_accuracy", "fake_accuracy", "ap", "roc_auc",
            "accuracy_at_best", "best_threshold")
    for k in keys:
        v = metrics.get(k)
        print(f"  {k:18s} {v:.4f}" if isinstance(v, float) else f"  {k:18s} {v}")
    groups = metrics.get("per_group") or {}
    if groups:
        print("  per generator (its fakes vs all reals, as UnivFD reports):")
        print(f"  {'generator':18s} {'n':>6s} {'acc':>7s} {'fake acc':>9s} {'AP':>7s}")
        for g, m in groups.items():
            ap, fa = m.get("ap"), m.get("fake_accuracy")
            print(f"  {g:18s} {m.get('n', 0):6d} {m.get('accuracy', float('nan')):7.4f} "
                  f"{'' if fa is None else format(fa, '9.4f'):>9s} {'' if ap is None else format(ap, '7.4f')}")


def _cmd_eval(args: argparse.Namespace) -> int:
    from detectlab.detect import evaluate_dataset, write_csv
    from detectlab.detect.predict import scoring_options
    from detectlab.progress import TqdmProgress

    from detectlab.catalog import load_detector

    loaded = load_detector(args.checkpoint)   # on --device (every command's flag: cli._use_device)
    detector, path = loaded.detector, loaded.path
    progress = TqdmProgress()
    preds, metrics, selection = evaluate_dataset(detector, args.data, split_name=args.split, seed=args.split_seed,
                                                 progress=progress, **scoring_options(loaded))
    progress.close()
    d = metrics.to_dict()
    print(f"{path.name} on {args.data}" + (f" ({args.split} split, seed {args.split_seed})"
                                           if args.split not in (None, "all") else ""))
    # say what was scored: a small folder's test split is a tenth of it, easy to miss
    print(f"scored: {selection.describe()}" + ("; omit --split (or --split all) to score every image"
                                               if selection.split != "all" else ""))
    _print_metrics(d)
    labels = {p.label for p in preds if p.p_fake is not None}
    if len(labels) == 1:
        print(f"note: only one class ({'fake' if labels == {1} else 'real'} images): balanced accuracy, AP and ROC AUC "
              "are undefined (n/a above); accuracy is the share decided correctly", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(d, indent=1))
    if args.csv:
        write_csv(preds, args.csv, path.stem)
    return 0


#: ``predict --csv`` scores and appends this many files at a time, so an interrupted run keeps what it scored.
CSV_CHUNK = 256


def _print_prediction(p) -> None:
    """One line: file, P(fake) and decision of the resize path, error, then what the verdict rests on."""
    extra = "" if p.p_fake_tiles is None else f"\ttiles {p.p_fake_tiles:.4f}"
    extra += "" if p.p_calibrated is None else \
        f"\tcalibrated {p.p_calibrated:.4f}" + ("\tunlike the training data" if p.unlike_training else "")
    if p.verdict != "error":
        extra += f"\tverdict {p.verdict.upper()}" + (f" ({'; '.join(p.reasons)})" if p.reasons else "")
    print(f"{p.file}\t{'' if p.p_fake is None else format(p.p_fake, '.4f')}\t{p.decision}\t{p.error}{extra}")


def _cmd_predict(args: argparse.Namespace) -> int:
    from detectlab.data import PathList
    from detectlab.detect import write_csv
    from detectlab.detect import predict as predict_mod
    from detectlab.errors import DatasetError
    from detectlab.progress import TqdmProgress

    from detectlab.catalog import load_detector

    loaded = load_detector(args.checkpoint)   # on --device (every command's flag: cli._use_device)
    detector, path = loaded.detector, loaded.path
    files = predict_mod.expand_inputs(args.inputs)
    if not files:  # nothing to score: say so, and leave no empty CSV behind that reads like a result
        raise DatasetError(f"no image files (PNG, JPEG, WebP, BMP, TIFF) found in {', '.join(args.inputs)}; "
                           "nothing scored" + (f", {args.csv} not written" if args.csv else ""))
    trust = loaded.trust
    if args.csv:  # resumable: rows are appended chunk by chunk, and a re-run skips the files already written
        done = predict_mod.written_files(args.csv, path.stem)
        todo = PathList([f for f in files.names if f not in done])   # strings, as the CSV holds them
        if done:
            print(f"resuming {args.csv}: {len(files) - len(todo)} of {len(files)} file(s) already scored there; "
                  f"scoring the other {len(todo)}", file=sys.stderr)
        files = todo
    progress = TqdmProgress()
    # one stream over all files (the Detect tab's batch scores the same way): each prediction is printed, and
    # appended to the CSV CSV_CHUNK at a time, as it comes, so memory stays flat however many files there are
    chunk, n, refused = [], 0, 0
    for p in predict_mod.iter_scores(loaded, files, progress=progress):
        _print_prediction(p)
        n += 1
        refused += p.decision == "error"
        if args.csv:
            chunk.append(p)
            if len(chunk) >= CSV_CHUNK:
                write_csv(chunk, args.csv, path.stem, append=True)
                chunk = []
    if chunk:
        write_csv(chunk, args.csv, path.stem, append=True)
    progress.close()
    if trust is None:
        print(f"note: {path.name} has no calibration statistics (detectlab calibrate); P(fake) is uncalibrated",
              file=sys.stderr)
    if args.heatmaps:
        progress = TqdmProgress()
        written = predict_mod.write_heatmaps(detector, files, args.heatmaps, loaded.threshold, args.method,
                                             progress=progress)
        progress.close()
        print(f"{len(written)} heatmaps written to {args.heatmaps}")
    if refused:  # a partial result is not a success: scripts must see it (exit 1), the user how many
        print(f"error: {refused} of {n} file(s) refused, not scored (the 'error' rows above say why)"
              + (f"; {n - refused} scored" if refused < n else ""), file=sys.stderr)
        return 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``detectlab eval`` and ``detectlab predict``."""
    e = sub.add_parser("eval", help="metrics of a checkpoint on a labelled data set, per generator")
    e.add_argument("checkpoint", help="shipped detector name, run id, or checkpoint file")
    e.add_argument("data")
    e.add_argument("--split", choices=["all", "train", "val", "test"], default=None,
                   help="evaluate one part of the 80/10/10 split by source group that `detectlab train` makes "
                        "(default: all images)")
    e.add_argument("--split-seed", type=int, default=0)
    e.add_argument("--json", help="write the metrics here")
    e.add_argument("--csv", help="write per-file scores here")
    e.set_defaults(func=_cmd_eval)

    p = sub.add_parser("predict", help="P(fake) for files or folders")
    p.add_argument("checkpoint", help="shipped detector name, run id, or checkpoint file")
    p.add_argument("inputs", nargs="+")
    p.add_argument("--csv", help="write per-file scores here; written as it goes, and a re-run with the same file "
                                 "and detector skips the files already in it (resumes after an interruption)")
    p.add_argument("--heatmaps", help="folder for heatmap overlays (one PNG per image and heatmap layer)")
    p.add_argument("--method", default="gradcam", choices=["gradcam", "gradcam++"])
    p.set_defaults(func=_cmd_predict)
