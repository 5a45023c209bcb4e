"""`detectlab fingerprint` and `detectlab clean`: spectral fingerprints of sets, and fingerprint removal."""

from __future__ import annotations

import argparse
from pathlib import Path


def _files_of(path: str) -> tuple[str, list[Path]]:
    from detectlab.detect.predict import expand_inputs

    p = Path(path)
    files = expand_inputs([p])
    if not files:
        raise ValueError(f"{path}: no image files")
    return p.name, files


def _cmd_fingerprint(args: argparse.Namespace) -> int:
    import numpy as np

    from detectlab.progress import TqdmProgress
    from detectlab.spectral import render_spectrum
    from detectlab.spectral.sets import fingerprints, set_spectrum

    progress = TqdmProgress()
    name, files = _files_of(args.real)
    real = set_spectrum("real", files, args.size, args.n or None, args.residual, progress=progress)
    synth = []
    for path in args.synthetic:
        sname, sfiles = _files_of(path)
        synth.append(set_spectrum(sname, sfiles, args.size, args.n or None, args.residual, progress=progress))
    progress.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fps = fingerprints(real, synth)
    lim = max(float(np.percentile(np.abs(f.values), 99.5)) for f in fps.values())
    for sname, fp in fps.items():
        np.save(out / f"{sname}.npy", fp.values.astype(np.float32))
        render_spectrum(fp.values, -lim, lim).save(out / f"{sname}.png")
        print(f"FP(real, {sname}): n_real={fp.n_real} n_synthetic={fp.n_synthetic} mean|FP|={np.abs(fp.values).mean():.4f}"
              f" -> {out / (sname + '.png')}")
    return 0


def _cmd_clean(args: argparse.Namespace) -> int:
    from detectlab.progress import TqdmProgress
    from detectlab.spectral.sets import clean_set

    _, real = _files_of(args.real)
    name, synth = _files_of(args.set)
    progress = TqdmProgress()
    out = clean_set(real, synth, args.method, Path(args.out), name, args.strength, args.threshold, args.size,
                    args.n or None, progress=progress)
    progress.close()
    print(f"cleaned data set written to {out} (real/ and {name}-{args.method}/)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``detectlab fingerprint`` and ``detectlab clean``."""
    fp = sub.add_parser("fingerprint", help="FP(R, S) of synthetic folders against a real folder ([Wimmer 2024] eq. 1)")
    fp.add_argument("real")
    fp.add_argument("synthetic", nargs="+")
    fp.add_argument("--out", required=True)
    fp.add_argument("--n", type=int, default=0, help="images per set (0 = all)")
    fp.add_argument("--size", type=int, default=128)
    fp.add_argument("--residual", action="store_true", help="high-pass residual first")
    fp.set_defaults(func=_cmd_fingerprint)

    cl = sub.add_parser("clean", help="fingerprint removal: write a cleaned copy of a synthetic set as a data set")
    cl.add_argument("method", choices=["msa", "fpa"])
    cl.add_argument("set", help="folder of synthetic images")
    cl.add_argument("--real", required=True, help="folder of real images (the fingerprint reference)")
    cl.add_argument("--out", required=True)
    cl.add_argument("--strength", type=float, default=1.0)
    cl.add_argument("--threshold", type=float, default=3.0, help="FPA peak threshold (std above the mean)")
    cl.add_argument("--size", type=int, default=128)
    cl.add_argument("--n", type=int, default=0, help="images used to measure the fingerprint (0 = all)")
    cl.set_defaults(func=_cmd_clean)
