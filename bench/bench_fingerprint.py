"""Fingerprint speed and memory: DetectLab against a plain per-image NumPy loop, in one run.

    .venv/bin/python bench/bench_fingerprint.py [--n 2000] [--out bench/results/fingerprint.json]

Both compute FP(R, S) ([Wimmer 2024], eq. 1) of the same N demo images (N/2 real, N/2
synthetic, 128 px), grayscale, centred log spectra:

- end to end (decode the PNG files + spectra), and
- on images already in memory (spectra only),

and each is also run with 2N images in a fresh process to check that DetectLab's peak
memory stays flat (it streams batches; the plain loop also streams, one image at a time).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _files(n: int) -> tuple[list[Path], list[Path]]:
    from detectlab.demo.build import ensure_demo
    from detectlab.spectral.sets import files_by_class

    by = files_by_class(ensure_demo())
    synth = [f for g in ("transposed-conv", "resize-conv", "pixel-shuffle") for f in by[g]]
    real = by["real"]
    half = n // 2
    # the demo has 847 real images: repeat the list to reach N/2 (same work per image)
    real = (real * (half // len(real) + 1))[:half]
    return real, synth[:half]


def plain_numpy(real: list[Path], synth: list[Path]):
    import numpy as np
    from PIL import Image

    def mean_log(files):
        acc = None
        for f in files:
            a = np.asarray(Image.open(f).convert("RGB"), dtype=np.float64) / 255.0
            g = 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]
            s = np.log(np.abs(np.fft.fftshift(np.fft.fft2(g, norm="ortho"))) + 1e-8)
            acc = s if acc is None else acc + s
        return acc / len(files)

    return mean_log(synth) - mean_log(real)


def detectlab_fp(real: list[Path], synth: list[Path]):
    from detectlab.spectral.sets import set_spectrum

    return set_spectrum("s", synth).mean - set_spectrum("r", real).mean


def in_memory(n: int, repeats: int = 3) -> dict:
    """Spectra only, images already decoded; best of ``repeats`` for each side."""
    import numpy as np
    import torch

    from detectlab.spectral import fingerprint

    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(n, 3, 128, 128, generator=g)
    real, synth = imgs[: n // 2], imgs[n // 2 :]
    arrays = {"r": real.permute(0, 2, 3, 1).double().numpy(), "s": synth.permute(0, 2, 3, 1).double().numpy()}

    def plain():
        acc = {}
        for name, arr in arrays.items():
            total = None
            for a in arr:
                gr = 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]
                s = np.log(np.abs(np.fft.fftshift(np.fft.fft2(gr, norm="ortho"))) + 1e-8)
                total = s if total is None else total + s
            acc[name] = total / len(arr)
        return acc["s"] - acc["r"]

    def ours():
        return fingerprint((real[i : i + 256] for i in range(0, len(real), 256)),
                           (synth[i : i + 256] for i in range(0, len(synth), 256))).values

    def best(fn):
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t)
        return min(times), out

    t_plain, ref = best(plain)
    t_ours, got = best(ours)
    assert np.allclose(got, ref, atol=1e-4)
    return {"plain_s": round(t_plain, 3), "detectlab_s": round(t_ours, 3), "speedup": round(t_plain / t_ours, 1)}


def child(which: str, n: int) -> None:
    """Run one variant in this process and print its time and peak RSS as JSON."""
    import torch

    torch.set_num_threads(2)
    real, synth = _files(n)
    t = time.perf_counter()
    (plain_numpy if which == "plain" else detectlab_fp)(real, synth)
    seconds = time.perf_counter() - t
    print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_child(which: str, n: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", which, "--n", str(n)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--child", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from _common import announce_device, write_results

    if args.child:
        child(args.child, args.n)
        return
    announce_device()

    import numpy as np

    real, synth = _files(200)
    assert np.allclose(plain_numpy(real, synth), detectlab_fp(real, synth), atol=1e-4), "the two disagree"
    res = {"n": args.n}
    for which in ("plain", "detectlab"):
        res[which] = {"n": run_child(which, args.n), "2n": run_child(which, 2 * args.n)}
    res["end_to_end_speedup"] = round(res["plain"]["n"]["seconds"] / res["detectlab"]["n"]["seconds"], 2)
    res["in_memory"] = in_memory(args.n)
    print(f"end to end, N={args.n}: plain NumPy loop {res['plain']['n']['seconds']:.1f} s, DetectLab "
          f"{res['detectlab']['n']['seconds']:.1f} s -> {res['end_to_end_speedup']}x")
    print(f"in memory, N={args.n}: plain {res['in_memory']['plain_s']} s, DetectLab {res['in_memory']['detectlab_s']} s "
          f"-> {res['in_memory']['speedup']}x")
    for which in ("plain", "detectlab"):
        print(f"peak RSS {which}: N {res[which]['n']['peak_rss_mb']:.0f} MB, 2N {res[which]['2n']['peak_rss_mb']:.0f} MB")
    write_results(args.out, res)


if __name__ == "__main__":
    main()
