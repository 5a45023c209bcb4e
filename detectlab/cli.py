"""The ``detectlab`` command line: every tab's work is also a command here."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from detectlab.config import set_offline_env
from detectlab.errors import DetectLabError


def _cmd_demo_build(args: argparse.Namespace) -> int:
    from detectlab.demo.build import DemoBuildConfig, build_demo
    from detectlab.progress import TqdmProgress

    progress = TqdmProgress()
    info = build_demo(DemoBuildConfig(steps=args.steps, seed=args.seed), sources=args.sources, progress=progress)
    progress.close()
    gens = info["generators"]
    for name, s in gens.items():
        print(f"{name:16s} PSNR {s['psnr_output_db']:.2f} dB (condition {s['psnr_condition_db']:.2f} dB), {s['train_seconds']:.0f} s")
    print(f"demo built in {info['seconds']:.0f} s")
    return 0


def _cmd_demo_materialize(args: argparse.Namespace) -> int:
    from detectlab.demo.build import is_materialized, materialize
    from detectlab.progress import TqdmProgress

    if is_materialized() and not args.force:
        print("demo already materialized (use --force to redo)")
        return 0
    progress = TqdmProgress()
    summary = materialize(progress=progress)
    progress.close()
    print(json.dumps(summary, indent=1))
    return 0


def _cmd_data_info(args: argparse.Namespace) -> int:
    from detectlab.config import DEMO_DIR, DEMO_INPAINT_DIR
    from detectlab.data import discover
    from detectlab.demo.build import ensure_demo

    path = Path(args.path).resolve()
    if path in (DEMO_DIR.resolve(), DEMO_INPAINT_DIR.resolve()):
        ensure_demo()
    ds = discover(path)
    if args.json:
        print(json.dumps({"root": str(ds.root), "layout": ds.layout, "counts": ds.counts() if hasattr(ds, "counts") else len(ds.pairs),
                          "skipped": [[str(p), r] for p, r in ds.skipped]}, indent=1))
    else:
        print(ds.summary())
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from detectlab.ui.app import launch

    launch(host=args.host, port=args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="detectlab", description="Synthetic image detection lab.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="the embedded demo data set").add_subparsers(dest="demo_command", required=True)
    b = demo.add_parser("build", help="train the demo generators and rebuild the demo set (<= 15 min, 2 cores)")
    b.add_argument("--sources", type=Path, default=None,
                   help="folder of unpacked photo packages; re-collects the real crops (see detectlab/demo/sources.py)")
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

    serve = sub.add_parser("serve", help="start the browser app")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=7860)
    serve.set_defaults(func=_cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    set_offline_env()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DetectLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
