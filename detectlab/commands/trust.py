"""`detectlab calibrate`: fit a detector's calibration and out-of-distribution statistics."""

from __future__ import annotations

import argparse


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from detectlab import catalog
    from detectlab.detect.trust import fit_trust, save_trust, trained_generators
    from detectlab.progress import TqdmProgress

    data = catalog.resolve_dataset(catalog.DEMO_LABEL, args.data or "")
    shipped = catalog.shipped_checkpoints()
    for name in args.detectors:
        loaded = catalog.load_detector(name)
        progress = TqdmProgress()
        trust = fit_trust(loaded.detector, data, split_seed=args.split_seed, progress=progress,
                          generators=trained_generators(loaded.meta))
        progress.close()
        path = save_trust(trust, loaded.path)
        c, d = trust.calibration, trust.density
        print(f"{loaded.short_name}: temperature {c.temperature:.3f}, validation ECE {c.ece_before:.4f} -> "
              f"{c.ece_after:.4f}, NLL {c.nll_before:.4f} -> {c.nll_after:.4f}; OOD threshold {d.threshold:.2f} "
              f"-> {path.name}")
        short = loaded.short_name
        if short in shipped and loaded.path == shipped[short]:
            entry = catalog.read_manifest()["checkpoints"][short]
            entry["trust"] = {"file": path.name, "temperature": round(c.temperature, 4),
                              "val_ece_before": round(c.ece_before, 4), "val_ece_after": round(c.ece_after, 4),
                              "ood_threshold": round(d.threshold, 3), "ood_percentile": 99,
                              "command": f"detectlab calibrate {short}"}
            catalog.update_manifest(short, entry)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("calibrate", help="temperature scaling on the validation split + the out-of-distribution "
                                         "statistics (Mahalanobis on features), stored beside the checkpoint")
    c.add_argument("detectors", nargs="+", help="shipped names, run ids or checkpoint files")
    c.add_argument("--data", help="labelled data set folder (default: the demo)")
    c.add_argument("--split-seed", type=int, default=0)
    c.set_defaults(func=_cmd_calibrate)
