"""FGSM cost against torchattacks' FGSM and against the bare forward + backward it needs; /attack round trip.

    .venv/bin/python bench/bench_attack.py [--repeats 20] [--api-repeats 20] [--out bench/results/attack.json]

Same model (the shipped cnn-resnet18), same batch (32 demo test images at 128 px, true labels),
eps 0.02. Three sides, interleaved in a rotating order within each repeat so that a noisy
neighbour on the shared CPU hits all of them alike:

* DetectLab's ``FGSM`` ([Petrželková 2024] eq. 3.10: BCE on the one logit, summed over the batch);
* torchattacks' ``FGSM`` on the two-logit wrapper ``[-z, z]`` of the same model (softmax
  cross-entropy over [-z, z] has the gradient sign of BCE on z);
* the floor: one forward + backward to the input and ``x + eps * sign(grad)``, nothing else.

Targets: DetectLab <= 1.05x torchattacks; the adversarial images equal within 1e-6. Then the
playground's API: ``/attack`` through gradio_client against the served app, FGSM, p50 < 200 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import announce_device, write_results  # noqa: E402

from detectlab.config import set_offline_env  # noqa: E402

set_offline_env()


class TwoLogits(torch.nn.Module):
    """``[-z, z]``: the two-class view of a one-logit detector that torchattacks expects."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.model(x)
        return torch.stack([-z, z], dim=1)


def stats(times: list[float]) -> dict:
    return {"min_ms": round(1000 * min(times), 2), "median_ms": round(1000 * statistics.median(times), 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--api-repeats", type=int, default=20)
    ap.add_argument("--eps", type=float, default=0.02)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    announce_device()
    torch.set_num_threads(2)

    import torchattacks

    from detectlab.attacks import FGSM, load_split
    from detectlab.catalog import load_detector
    from detectlab.demo.build import ensure_demo

    data = ensure_demo()
    det = load_detector("cnn-resnet18").detector.eval()
    images = load_split(data, "test", 128, limit=32, seed=1)
    x, y = images.batch(0, 32), images.labels
    eps = args.eps

    ours = FGSM(det, eps)
    theirs = torchattacks.FGSM(TwoLogits(det).eval(), eps=eps)

    def floor():
        xi = x.clone().requires_grad_(True)
        loss = F.binary_cross_entropy_with_logits(det(xi), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, xi)
        return (x + eps * g.sign()).clamp(0, 1)

    sides = {"detectlab": lambda: ours(x, y), "torchattacks": lambda: theirs(x, y.long()), "floor": floor}
    for fn in sides.values():
        fn()  # warm-up
    times = {k: [] for k in sides}
    names = list(sides)
    for i in range(args.repeats):
        for k in names[i % 3:] + names[: i % 3]:  # rotate who goes first
            t = time.perf_counter()
            sides[k]()
            times[k].append(time.perf_counter() - t)
    a, b, f = ours(x, y), theirs(x, y.long()), floor()
    r = {k: stats(v) for k, v in times.items()}
    r["batch"] = int(x.shape[0])
    r["eps"] = eps
    r["detectlab_over_torchattacks"] = round(r["detectlab"]["median_ms"] / r["torchattacks"]["median_ms"], 3)
    r["detectlab_over_floor"] = round(r["detectlab"]["median_ms"] / r["floor"]["median_ms"], 3)
    r["max_abs_diff_vs_torchattacks"] = float((a - b).abs().max())
    r["pixels_differing_vs_torchattacks"] = int(((a - b).abs() > 1e-6).sum())
    r["max_abs_diff_vs_floor"] = float((a - f).abs().max())
    r["equal_within_1e-6"] = r["max_abs_diff_vs_torchattacks"] <= 1e-6

    if args.api_repeats:
        r["api"] = bench_api(data, args.api_repeats)
    for k, v in r.items():
        print(f"{k:34s} {v}")
    write_results(args.out, r)


def bench_api(data: Path, repeats: int) -> dict:
    """/attack through gradio_client against the served app: one 128 px demo image, FGSM eps 0.02."""
    from gradio_client import Client, handle_file

    from detectlab.ui.app import serve

    image = next((data / "pixel-shuffle").glob("*.png"))
    served = serve(host="127.0.0.1", port=0)
    try:
        client = Client(served.url, verbose=False)
        call = lambda: client.predict(handle_file(str(image)), "cnn-resnet18", "fgsm", 0.02,  # noqa: E731
                                      api_name="/attack")
        out = call()  # warm-up: model load, first request
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            out = call()
            times.append(time.perf_counter() - t)
    finally:
        served.close()
    q = statistics.quantiles(times, n=10)
    return {"p50_ms": round(1000 * statistics.median(times), 1), "p90_ms": round(1000 * q[-1], 1),
            "min_ms": round(1000 * min(times), 1), "server_side_attack_ms": round(1000 * out[0]["seconds"], 1),
            "repeats": repeats}


if __name__ == "__main__":
    main()
