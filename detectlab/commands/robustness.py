"""`detectlab sweep`: accuracy against degradation strength ([Petrželková 2024] §4.3, Figs 4.4-4.10)."""

from __future__ import annotations

import argparse

from detectlab.commands import add_detectors_and_split, data_root


def _cmd_sweep(args: argparse.Namespace) -> int:
    from detectlab import catalog
    from detectlab.progress import TqdmProgress
    from detectlab.robustness import (
        SweepSpec, augmented_groups, group_detectors, robustness_reading, run_sweep, sweep_samples,
    )
    from detectlab.robustness.plots import sweep_figure, write_html, write_png

    spec = SweepSpec.make(args.degradation, args.levels, args.chain or "*", seed=args.seed)
    detectors = [catalog.load_detector(name) for name in args.detectors]
    root = data_root(args)
    progress = TqdmProgress(disable=args.quiet)
    samples, _ = sweep_samples(root, args.split, args.split_seed, progress=progress)
    groups = group_detectors(detectors, repeat_group=args.repeat_group)
    result = run_sweep(groups, samples, spec, batch_size=args.batch_size,
                       data=f"{root} ({args.split})", progress=progress)
    progress.close()
    rows = result.summary()
    key = spec.strength_name
    print(f"{spec.label} on {result.n_images} images of {root} ({args.split} split), {result.seconds:.1f} s")
    print(f"{'detector':40s} {key:>9s} {'runs':>4s} {'accuracy':>15s} {'balanced acc':>15s} {'AP':>15s}")
    for r in rows:
        cells = [_pm(r[f"{m}_mean"], r[f"{m}_std"], r["runs"]) for m in ("accuracy", "balanced_accuracy", "ap")]
        level = "off" if r[key] is None else format(r[key], "g")
        print(f"{r['detector'][:40]:40s} {level:>9s} {r['runs']:>4d} " + " ".join(f"{c:>15s}" for c in cells))
    for line in robustness_reading(result, augmented_groups(groups)):
        print(line)
    if result.skipped:
        print(f"{len(result.skipped)} unreadable files skipped (first: {result.skipped[0][1]})")
    if args.csv:
        print(f"wrote {result.write_csv(args.csv)}")
    if args.json:
        print(f"wrote {result.write_json(args.json)}")
    for plot in args.plot or []:
        out = write_png(result, plot) if str(plot).lower().endswith(".png") else write_html(sweep_figure(result), plot)
        print(f"wrote {out}")
    return 0


def _pm(mean, std, runs) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.3f}" + (f" ± {std:.3f}" if runs > 1 else "")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``detectlab sweep``."""
    sw = sub.add_parser(
        "sweep", help="accuracy / balanced accuracy / AP against degradation strength ([Petrželková 2024] Figs 4.4-4.10)",
        description="Score a labelled split with each detector at each strength of one degradation "
                    "(blur, jpeg, downsize, patch, noise, resize), optionally inside a fixed chain.")
    add_detectors_and_split(sw)
    sw.add_argument("--degradation", required=True, help="blur, jpeg, downsize, patch, noise or resize")
    sw.add_argument("--levels", default=None,
                    help="comma-separated strengths, e.g. 100,90,70,50,30,10 (default: [Petrželková 2024]'s range)")
    sw.add_argument("--chain", default=None,
                    help="fixed steps around the varying one, which is written *: e.g. 'downsize 0.5 > *'")
    sw.add_argument("--repeat-group", action="store_true",
                    help="treat runs of the same training config (different seeds) as one detector: mean ± std")
    sw.add_argument("--seed", type=int, default=0, help="seed of random degradations (noise)")
    sw.add_argument("--batch-size", type=int, default=64)
    sw.add_argument("--csv", help="write the table here")
    sw.add_argument("--json", help="write every number here")
    sw.add_argument("--plot", action="append", help="write the figure here: .html (interactive) or .png; repeatable")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.set_defaults(func=_cmd_sweep)
