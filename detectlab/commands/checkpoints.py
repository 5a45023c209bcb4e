"""`detectlab checkpoints build`: train the shipped default detectors (or localizers) and write the manifest."""

from __future__ import annotations

import argparse


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


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``detectlab checkpoints build``."""
    ck = sub.add_parser("checkpoints", help="the shipped default detectors").add_subparsers(dest="ck_command", required=True)
    cb = ck.add_parser("build", help="train the default detectors on the demo and write checkpoints/manifest.json")
    cb.add_argument("--only", help="comma-separated names to rebuild")
    cb.set_defaults(func=_cmd_checkpoints_build)
