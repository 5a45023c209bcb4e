"""Every ``detectlab`` sub-command: one module per command group, assembled by ``detectlab.cli``.

Each module has ``register(sub)`` that adds its parsers to the top-level sub-parsers and sets
``func`` on them; ``func(args) -> int`` is the exit code. ``MODULES`` is the order ``detectlab --help``
lists them in. Same layer as ``detectlab.cli``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

MODULES = ("demo", "data", "train", "detect", "checkpoints", "fingerprint", "runs", "models", "serve",
           "robustness", "attack", "localize", "experiment", "trust", "heldout", "storage")


def register_all(sub: argparse._SubParsersAction) -> None:
    import importlib

    for name in MODULES:
        importlib.import_module(f"detectlab.commands.{name}").register(sub)


def add_detectors_and_split(p: argparse.ArgumentParser) -> None:
    """The detectors (positional) and the labelled split they run on, as every set-level command takes them."""
    p.add_argument("detectors", nargs="+", metavar="NAME_OR_CKPT",
                   help="shipped name (cnn-resnet18), run id, or checkpoint file")
    p.add_argument("--data", default=None, help="labelled data set folder (default: the demo)")
    p.add_argument("--split", default="test", help="train, val, test or all (default test)")
    p.add_argument("--split-seed", type=int, default=0)


def data_root(args: argparse.Namespace) -> Path:
    """``--data``, or the demo (materialized on first use) when it is not given or names the demo."""
    from detectlab import catalog, config

    root = Path(args.data) if args.data else config.DEMO_DIR
    if root.resolve() == config.DEMO_DIR.resolve():
        root = catalog.resolve_dataset(catalog.DEMO_LABEL)
    return root
