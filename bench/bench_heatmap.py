"""Heatmap cost against its true floor and against pytorch-grad-cam, in one run.

    .venv/bin/python bench/bench_heatmap.py [--repeats 20] [--out bench/results/heatmap.json]

Same model (the shipped ResNet-18 detector), same input (one 128 px demo image, batch 1).
Sides, interleaved round by round (each round calls every side once, in a rotated order, so
a load change on a shared machine hits all sides alike), min and median over the rounds:

- forward: the plain forward pass, no graph;
- floor: what any Grad-CAM must do, no more: the forward pass, with the graph recorded only
  from the target layer's output on (no parameter requires a gradient; the activation is the
  one leaf), then the backward from the logit to that activation (``torch.autograd.grad``);
- forward + backward (all parameters): a training step's backward, the old comparison, for scale;
- DetectLab's Grad-CAM, pytorch-grad-cam's GradCAM; the whole request (decode -> P(fake) +
  heatmap PNG).

Targets: DetectLab's heatmap <= 1.2x the floor; the whole request under 150 ms.

pytorch-grad-cam hard-requires opencv-python-headless, which must not be installed beside
the opencv-python build that ultralytics uses, so the bench loads it from its wheel
(pure Python) on sys.path instead of installing it: it is downloaded to ~/.cache on first run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import announce_device, write_results  # noqa: E402

from detectlab.config import set_offline_env  # noqa: E402

set_offline_env()

WHEELS = Path.home() / ".cache" / "detectlab-bench-wheels"


def import_pytorch_grad_cam():
    try:
        import pytorch_grad_cam  # noqa: F401
    except ImportError:
        import tarfile

        WHEELS.mkdir(parents=True, exist_ok=True)
        if not list(WHEELS.glob("grad_cam-*")):
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(WHEELS),
                            "grad-cam==1.5.7", "ttach==0.0.3"], check=True)
        for sdist in WHEELS.glob("grad_cam-*.tar.gz"):  # grad-cam is published as an sdist only
            target = WHEELS / sdist.name[: -len(".tar.gz")]
            if not target.exists():
                with tarfile.open(sdist) as tf:
                    tf.extractall(WHEELS, filter="data")
            sys.path.insert(0, str(target))
        for whl in WHEELS.glob("*.whl"):
            sys.path.insert(0, str(whl))
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget

    return GradCAM, BinaryClassifierOutputTarget


def interleaved(sides: dict, rounds: int) -> dict[str, tuple[float, float]]:
    """``{side: (min ms, median ms)}`` over ``rounds`` rounds; each round calls every side once, in a
    rotated order, after one warm-up call each."""
    for fn in sides.values():
        fn()
    names = list(sides)
    times: dict[str, list[float]] = {name: [] for name in names}
    for k in range(rounds):
        for name in names[k % len(names):] + names[:k % len(names)]:
            t = time.perf_counter()
            sides[name]()
            times[name].append(1000 * (time.perf_counter() - t))
    return {name: (min(ts), statistics.median(ts)) for name, ts in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=20, help="interleaved rounds (at least 3)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    announce_device()
    if args.repeats < 3:
        ap.error("--repeats must be at least 3 (min and median over the rounds)")
    torch.set_num_threads(2)

    from detectlab.data import load_tensor
    from detectlab.demo.build import ensure_demo
    from detectlab.catalog import load_detector
    from detectlab.detect.analyze import analyze_file, png_bytes
    from detectlab.explain import GradCAM as OurGradCAM

    data = ensure_demo()
    image_path = data / "pixel-shuffle" / "p0001_c0.png"
    loaded = load_detector("cnn-resnet18")
    det = loaded.detector
    x = load_tensor(image_path, det.preprocess.input_size)[None]
    target = det.heatmap_targets()[0]

    def forward():
        with torch.no_grad():
            det(x)

    def forward_backward():
        xi = x.clone().requires_grad_(True)
        det(xi).sum().backward()
        det.zero_grad(set_to_none=True)

    params = list(det.parameters())

    def floor():
        # the graph starts at the target layer's output: the layers before it record nothing, no
        # parameter gets a gradient, the backward stops at the activation
        grabbed = []

        def leaf(_m, _i, out):
            out = out.detach().requires_grad_(True)
            grabbed.append(out)
            return out

        flags = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad_(False)
        handle = target.module.register_forward_hook(leaf)
        try:
            logit = det(x)
            torch.autograd.grad(logit.sum(), grabbed)
        finally:
            handle.remove()
            for p, f in zip(params, flags):
                p.requires_grad_(f)

    ours = OurGradCAM(det, target)

    def detectlab_cam():
        ours(x)

    GradCAM, BinaryTarget = import_pytorch_grad_cam()

    class Wrapped(torch.nn.Module):  # pytorch-grad-cam expects [B, classes] outputs
        def __init__(self, d):
            super().__init__()
            self.d = d

        def forward(self, inp):
            return self.d(inp)[:, None]

    theirs = GradCAM(model=Wrapped(det), target_layers=[target.module])
    with torch.no_grad():
        label = int(det(x)[0] > 0)

    def their_cam():
        theirs(input_tensor=x, targets=[BinaryTarget(label)])

    def whole_request():
        a = analyze_file(det, image_path, loaded.threshold)
        png_bytes(a.overlays(0.5)[0][0])

    measured = interleaved({"forward": forward, "floor": floor, "forward_backward": forward_backward,
                            "detectlab_gradcam": detectlab_cam, "pytorch_grad_cam": their_cam,
                            "whole_request": whole_request}, args.repeats)
    r: dict = {"rounds": args.repeats}
    for name, (lo, med) in measured.items():
        r[f"{name}_ms"], r[f"{name}_min_ms"] = round(med, 2), round(lo, 2)
    # same map? compare on the decided class
    ours_map = ours(x)[0][0].numpy()
    their_map = theirs(input_tensor=x, targets=[BinaryTarget(label)])[0]
    import numpy as np

    r["map_correlation"] = round(float(np.corrcoef(ours_map.ravel(), their_map.ravel())[0, 1]), 4)
    # ratios of medians (and of minimums: the least disturbed call of each side)
    for key, num, den in (("heatmap_over_floor", "detectlab_gradcam", "floor"),
                          ("heatmap_over_fwd_bwd", "detectlab_gradcam", "forward_backward"),
                          ("pytorch_grad_cam_over_detectlab", "pytorch_grad_cam", "detectlab_gradcam")):
        r[key] = round(measured[num][1] / measured[den][1], 2)
        r[key + "_of_min"] = round(measured[num][0] / measured[den][0], 2)
    for k, v in r.items():
        print(f"{k:32s} {v}")
    write_results(args.out, r)


if __name__ == "__main__":
    main()
