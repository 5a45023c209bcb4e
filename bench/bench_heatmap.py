"""Heatmap cost against a plain forward/backward and against pytorch-grad-cam, in one run.

    .venv/bin/python bench/bench_heatmap.py [--repeats 20] [--out bench/results/heatmap.json]

Same model (the shipped ResNet-18 detector), same input (one 128 px demo image, batch 1):
plain forward, forward + backward, DetectLab's Grad-CAM, pytorch-grad-cam's GradCAM.
Targets: DetectLab's heatmap <= 1.2x forward + backward; the whole request (decode ->
P(fake) + heatmap PNG) under 150 ms.

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

from _common import write_results  # noqa: E402

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


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
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

    r = {name: round(timed(fn, args.repeats), 2) for name, fn in [
        ("forward_ms", forward), ("forward_backward_ms", forward_backward), ("detectlab_gradcam_ms", detectlab_cam),
        ("pytorch_grad_cam_ms", their_cam), ("whole_request_ms", whole_request)]}
    # same map? compare on the decided class
    ours_map = ours(x)[0][0].numpy()
    their_map = theirs(input_tensor=x, targets=[BinaryTarget(label)])[0]
    import numpy as np

    r["map_correlation"] = round(float(np.corrcoef(ours_map.ravel(), their_map.ravel())[0, 1]), 4)
    r["heatmap_over_fwd_bwd"] = round(r["detectlab_gradcam_ms"] / r["forward_backward_ms"], 2)
    r["pytorch_grad_cam_over_detectlab"] = round(r["pytorch_grad_cam_ms"] / r["detectlab_gradcam_ms"], 2)
    for k, v in r.items():
        print(f"{k:32s} {v}")
    write_results(args.out, r)


if __name__ == "__main__":
    main()
