"""Bench: one Localize request (decode -> regions -> overlay) against bare ultralytics and the forward floor.

Sides, interleaved, each repeated: DetectLab's ``localize_image`` + overlay PNG, ultralytics'
own ``model.predict(path)`` on the same file, and the floor: the segmentation network's
forward pass alone on an already prepared tensor. Prints min and median per side and the
ratios to the floor. Run: ``python bench/bench_localize.py [LOCALIZER] [--repeats N] [--out FILE]``
(``--out bench/results/bench_localize.json`` to replace the recorded numbers; without it, nothing is written).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import announce_device, write_results  # noqa: E402


def main() -> None:
    from detectlab import config

    config.set_offline_env()
    from detectlab.localize import load_localizer, localize_image
    from detectlab.localize.dataset import split_examples
    from detectlab.catalog import resolve_localizer

    parser = argparse.ArgumentParser()
    parser.add_argument("localizer", nargs="?", default="localizer-yolov8n-seg")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--out", default=None, help="write the numbers here as JSON (default: print only)")
    args = parser.parse_args()
    announce_device("cpu")   # the localizer predicts on the CPU here
    loc = load_localizer(resolve_localizer(args.localizer), allow_pickle=True)
    pairs = split_examples(config.DEMO_INPAINT_DIR)[: args.images]
    x = torch.rand(1, 3, loc.imgsz, loc.imgsz)
    # ultralytics runs its CPU inference on cpu_count - 1 threads (1 here): the floor gets the same
    floor_threads = max(1, (os.cpu_count() or 2) - 1)

    def detectlab_side():
        for _, img, mask in pairs:
            r = localize_image(loc, img, mask=mask, conf=0.25)
            r.overlay().save(io.BytesIO(), format="PNG", compress_level=1)  # as the /localize API writes it
            r.tp_fp_fn()

    def ultralytics_side():
        with contextlib.redirect_stdout(io.StringIO()):
            for _, img, _ in pairs:
                loc.model.predict(str(img), imgsz=loc.imgsz, conf=0.25, device="cpu", verbose=False)

    def floor_side():
        net = loc.model.predictor.model  # the fused network ultralytics' predictor runs
        threads = torch.get_num_threads()
        torch.set_num_threads(floor_threads)
        with torch.no_grad():
            for _ in pairs:
                net(x)
        torch.set_num_threads(threads)

    sides = {"detectlab localize_image + overlays": detectlab_side, "ultralytics predict(path)": ultralytics_side,
             "forward pass only (floor)": floor_side}
    for fn in (ultralytics_side, detectlab_side, floor_side):  # warm-up (builds the predictor first)
        fn()
    times: dict[str, list[float]] = {k: [] for k in sides}
    for _ in range(args.repeats):
        for name, fn in sides.items():
            t = time.perf_counter()
            fn()
            times[name].append(1000 * (time.perf_counter() - t) / len(pairs))
    floor = statistics.median(times["forward pass only (floor)"])
    out = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        out[name] = {"min_ms": round(min(ts), 2), "median_ms": round(med, 2), "ratio_to_floor": round(med / floor, 2)}
        print(f"{name:40s} min {min(ts):7.2f} ms  median {med:7.2f} ms  x{med / floor:.2f} of the floor")
    write_results(args.out, {"localizer": args.localizer, "imgsz": loc.imgsz, "images": len(pairs),
                             "repeats": args.repeats, "inference_threads": floor_threads, "per_image": out})


if __name__ == "__main__":
    main()
