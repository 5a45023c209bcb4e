"""Data-parallel training (torchrun + DDP) against one process, the same global batch, as a user runs it.

    .venv/bin/python bench/bench_ddp.py [--steps 40] [--size 64] [--repeats 3] [--out bench/results/ddp.json]

Each side is ``detectlab train`` in a fresh process on the same 320-image set made here (ResNet-18),
the same global batch 2B and steps: ``--nproc-per-node 2`` with batch B and 1 torch thread per rank,
against one process with batch 2B and 2 threads (the default use of 2 cores) and with 1 thread
(the floor: what one rank's arithmetic costs alone, and, on a loaded machine, the fastest one-process
choice, since a 2-thread step stalls whenever either thread is descheduled). Interleaved (the order
rotates each round), ``--repeats`` rounds, min and median of the training images/s (optimisation
steps only, as the run records it) and of the wall time (process start, decode, train, validate,
test). On cores one process already uses, DDP can only add its all-reduce and a second copy of the
model and data.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, write_results  # noqa: E402


def make_set(root: Path, n: int = 160, size: int = 64) -> Path:
    """``n`` real (smooth noise) and ``n`` fake (the same with a checkerboard) images."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    pattern = (((yy + xx) % 2) * 2 - 1) * 18.0
    for name in ("real", "gan"):
        (root / name).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        base = rng.normal(128, 30, (8, 8, 3))
        img = np.asarray(Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).resize((size, size)), float)
        Image.fromarray(img.astype(np.uint8)).save(root / "real" / f"{i:04d}.png")
        Image.fromarray(np.clip(img + pattern[..., None], 0, 255).astype(np.uint8)).save(root / "gan" / f"{i:04d}.png")
    return root


def one_run(data: Path, home: Path, processes: int, threads: int, args) -> dict:
    """``detectlab train`` with ``processes`` ranks of ``threads`` threads; the run's recorded images/s and the
    wall time."""
    env = dict(os.environ, DETECTLAB_HOME=str(home))
    cmd = [sys.executable, "-m", "detectlab", "train", "--data", str(data), "--arch", "resnet18", "--input-size",
           str(args.size), "--iterations", str(args.steps), "--batch-size", str(args.batch // processes),
           "--threads", str(threads), "--nproc-per-node", str(processes), "--device", "cpu"]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    from detectlab.runs import RunStore

    record = RunStore(home / "runs.sqlite").list(limit=1)[0]
    assert record.status == "finished", record.error
    return {"img_s": record.result["images_per_second"], "wall_s": wall,
            "hardware": record.result.get("hardware", {})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=32, help="global batch (each of 2 ranks takes half)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import torch

    device = f"CPU ({os.cpu_count()} cores, torch {torch.__version__}; gloo between the ranks)"
    print(f"device: {device}")
    with tempfile.TemporaryDirectory() as tmp:
        data = make_set(Path(tmp) / "set", size=args.size)
        order = [(2, 1), (1, 2), (1, 1)]  # (processes, threads each)
        sides: dict[tuple, list[dict]] = {side: [] for side in order}
        for k in range(args.repeats):
            for processes, threads in order[k % 3:] + order[: k % 3]:  # interleaved, the first side rotating
                r = one_run(data, Path(tmp) / f"home{k}-{processes}-{threads}", processes, threads, args)
                sides[(processes, threads)].append(r)
                print(f"round {k + 1}, {processes} process(es) x {threads} thread(s): {r['img_s']:.1f} img/s, "
                      f"{r['wall_s']:.1f} s wall")
    results = {"device": device, "arch": "resnet18", "input_size": args.size, "steps": args.steps,
               "global_batch": args.batch, "repeats": args.repeats}
    for (processes, threads), runs in sides.items():
        speeds, walls = [r["img_s"] for r in runs], [r["wall_s"] for r in runs]
        results[f"{processes}_process_{threads}_thread"] = {
            "img_s_min": round(min(speeds), 1), "img_s_median": round(statistics.median(speeds), 1),
            "wall_s_min": round(min(walls), 1), "wall_s_median": round(statistics.median(walls), 1),
            "hardware": runs[0]["hardware"]}
    two, floor = results["2_process_1_thread"], results["1_process_1_thread"]
    results["ddp_over_floor_img_s"] = round(two["img_s_median"] / floor["img_s_median"], 3)
    print(json.dumps(results, indent=1))
    write_results(args.out, results)


if __name__ == "__main__":
    main()
