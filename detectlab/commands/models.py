"""`detectlab models`: the registered architectures and the shipped checkpoints."""

from __future__ import annotations

import argparse


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


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``detectlab models``."""
    mo = sub.add_parser("models", help="architectures and shipped checkpoints")
    mo.set_defaults(func=_cmd_models)
