"""`detectlab data info`: a data set's layout, counts and the split training uses; `detectlab data cache`: the
frozen-feature cache's size, and ``--clear``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _print_splits(root: Path) -> None:
    """Per class/generator counts of the 80/10/10 split by source group that training and `eval --split` use."""
    from detectlab import config
    from detectlab.data.overview import overview

    ov = overview(root, examples=0, validate=False)
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

    # listed, not probed: a 100k-image folder opens in seconds; unreadable files are reported by the step reading them
    ds = discover(materialize_if_demo(Path(args.path).resolve()), validate=False)
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


def _cmd_data_cache(args: argparse.Namespace) -> int:
    from detectlab.data import featcache

    if args.clear:
        nbytes, files = featcache.clear()
        print(f"feature cache cleared: {nbytes / 1e6:,.1f} MB in {files} file{'s' if files != 1 else ''} deleted "
              f"from {featcache.cache_dir()}; features are extracted again on next use")
    else:
        print(f"feature cache: {featcache.describe()} in {featcache.cache_dir()} "
              "(frozen-backbone features of training, embeddings and experiments; --clear deletes them)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``detectlab data info`` and ``detectlab data cache``."""
    data = sub.add_parser("data", help="data sets").add_subparsers(dest="data_command", required=True)
    info = data.add_parser("info", help="layout, per-class and per-generator counts, skipped files")
    info.add_argument("path")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=_cmd_data_info)
    cache = data.add_parser("cache", help="size of the frozen-feature cache; --clear deletes it")
    cache.add_argument("--clear", action="store_true", help="delete every cached feature file")
    cache.set_defaults(func=_cmd_data_cache)
