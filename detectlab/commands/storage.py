"""`detectlab compact`: store shipped checkpoints' weights in float16 (half the bytes)."""

from __future__ import annotations

import argparse


def _cmd_compact(args: argparse.Namespace) -> int:
    import torch

    from detectlab import catalog
    from detectlab.data import load_tensor, split
    from detectlab.data.discover import discover
    from detectlab.models.compact import compact_checkpoint

    probe_files = []
    if not args.no_probe:
        ds = discover(catalog.resolve_dataset(catalog.DEMO_LABEL))
        probe_files = [s.path for s in split(ds.samples, seed=0)["test"]]
    for name in args.detectors:
        loaded = catalog.load_detector(name)
        probe = torch.stack([load_tensor(p, loaded.input_size) for p in probe_files]) if probe_files else None
        r = compact_checkpoint(loaded.path, probe)
        dp = "" if r["max_abs_dp"] is None else f", largest P(fake) change on {len(probe_files)} demo test images " \
                                                 f"{r['max_abs_dp']:.2e}"
        print(f"{r['file']}: {r['bytes_before'] / 1e6:.1f} MB -> {r['bytes_after'] / 1e6:.1f} MB{dp}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("compact", help="store a checkpoint's weights as float16 (half the bytes); reports the "
                                       "largest P(fake) change on the demo test split")
    c.add_argument("detectors", nargs="+", help="shipped names, run ids or checkpoint files")
    c.add_argument("--no-probe", action="store_true", help="skip measuring the P(fake) change")
    c.set_defaults(func=_cmd_compact)
