"""Robustness benches: sweep throughput against the plain predict loop, and the /degrade_score round trip.

    .venv/bin/python bench/bench_robustness.py [--repeats 3] [--n 336] [--calls 40] [--out bench/results/robustness.json]

1. Sweep overhead. The same images (the demo's test split, cnn-resnet18, batch 32), three
   ways, interleaved per repeat:
   * ``plain``: ``detectlab.detect.predict_files``, the loop a user would run once per
     strength (decode + resize + forward);
   * ``sweep``: ``detectlab.robustness.run_sweep`` over L strengths of blur or JPEG, per strength;
   * ``floor``: forward passes only, on tensors decoded beforehand: what no sweep can beat.
   Target: sweep time per strength <= 1.25 x one plain pass (degradation overhead <= 25 %).
   Also printed: the degradation alone (batched blur / per-image JPEG) against the floor.
2. Slider round trip. The app served in-process; ``gradio_client`` calls ``/degrade_score``
   with a 512 px JPEG that is uploaded once and then referred to by its server path (and, for
   comparison, uploaded again with every call), JPEG + blur + cnn-resnet18, a different slider
   value each call. Targets (already on the server): p50 < 150 ms, p95 < 300 ms. The floor: a
   Gradio endpoint with the same inputs and outputs that does no work.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import announce_device, write_results  # noqa: E402

from detectlab.config import set_offline_env  # noqa: E402

set_offline_env()

LEVELS = {"blur": (0.5, 1, 2, 3, 5, 10), "jpeg": (90, 70, 50, 30, 10)}


def _stats(times: list[float]) -> dict:
    return {"min": round(min(times), 4), "median": round(statistics.median(times), 4), "runs": len(times)}


def bench_sweep(repeats: int, n: int) -> dict:
    from detectlab import catalog, config
    from detectlab.data import load_tensor
    from detectlab.degrade import Chain
    from detectlab.detect.predict import predict_files
    from detectlab.robustness import SweepSpec, group_detectors, run_sweep, sweep_samples

    root = catalog.resolve_dataset(catalog.DEMO_LABEL)
    samples, _ = sweep_samples(root, "test")
    samples = samples[:n]
    loaded = catalog.load_detector("cnn-resnet18")
    det = loaded.detector.eval()
    groups = group_detectors([loaded])
    files = [s.path for s in samples]
    size = det.preprocess.input_size
    decoded = [torch.stack([load_tensor(f, size) for f in files[i:i + 32]]) for i in range(0, len(files), 32)]

    def plain():
        predict_files(det, files, loaded.threshold, batch_size=32)

    @torch.no_grad()
    def floor():
        for x in decoded:
            det(x)

    def sweep(name):
        run_sweep(groups, samples, SweepSpec.make(name, LEVELS[name]), batch_size=32)

    def degrade_only(name):
        for level in LEVELS[name]:
            chain = Chain([(name, level)])
            for x in decoded:
                chain(x)

    times: dict[str, list[float]] = {k: [] for k in ("plain", "floor", "sweep_blur", "sweep_jpeg",
                                                       "degrade_blur", "degrade_jpeg")}
    plain()  # warm-up: page cache, allocator
    for _ in range(repeats):
        for key, fn in (("plain", plain), ("sweep_blur", lambda: sweep("blur")), ("floor", floor),
                        ("sweep_jpeg", lambda: sweep("jpeg")), ("degrade_blur", lambda: degrade_only("blur")),
                        ("degrade_jpeg", lambda: degrade_only("jpeg"))):
            t = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - t
            name = key.split("_")[-1]
            times[key].append(elapsed / (len(LEVELS[name]) if key != "plain" and key != "floor" else 1))
    r = {"images": len(files), "levels": {k: list(v) for k, v in LEVELS.items()},
         "per_pass_seconds": {k: _stats(v) for k, v in times.items()}}
    med = {k: statistics.median(v) for k, v in times.items()}
    for name in LEVELS:
        r[f"{name}_sweep_over_plain"] = round(med[f"sweep_{name}"] / med["plain"], 3)
        r[f"{name}_sweep_over_floor"] = round(med[f"sweep_{name}"] / med["floor"], 3)
        r[f"{name}_degrade_over_floor"] = round(med[f"degrade_{name}"] / med["floor"], 3)
    r["plain_over_floor"] = round(med["plain"] / med["floor"], 3)
    return r


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _floor_app():
    """The true floor of a round trip: a Gradio endpoint with the same inputs and outputs that does
    no work (returns a fixed JSON and a fixed 128 px PNG)."""
    import gradio as gr
    from PIL import Image

    still = Image.new("RGB", (128, 128), (90, 120, 150))
    with gr.Blocks() as app:
        f, j, im = gr.File(type="filepath"), gr.JSON(), gr.Image(type="pil", format="png")
        gr.Button().click(lambda _p: ({"p_fake": 0.5}, still), f, [j, im], api_name="noop")
    app.queue()
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return app, f"http://127.0.0.1:{port}/"


def bench_api(calls: int) -> dict:
    import httpx
    from gradio_client import Client, handle_file
    from PIL import Image

    from detectlab import catalog
    from detectlab.data import discover, split
    from detectlab.ui.app import build_app

    root = catalog.resolve_dataset(catalog.DEMO_LABEL)
    src = next(s.path for s in split(discover(root).samples, seed=0)["test"] if s.generator == "pixel-shuffle")
    photo = Path(tempfile.mkdtemp(prefix="bench-robust-")) / "photo512.jpg"
    Image.open(src).convert("RGB").resize((512, 512), Image.Resampling.BICUBIC).save(photo, quality=92)
    demo = build_app()
    demo.queue(default_concurrency_limit=4)
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    floor_app, floor_url = _floor_app()
    try:
        url = f"http://127.0.0.1:{port}/"
        client = Client(url, verbose=False)
        with photo.open("rb") as fh:   # upload once; later calls refer to the server's copy
            server_path = httpx.post(client.upload_url, files=[("files", (photo.name, fh))]).json()[0]
        from gradio_client.client import Endpoint

        upload = Endpoint._upload_file
        # gradio_client uploads every local path it is given; the server's own cached copy needs no upload
        Endpoint._upload_file = lambda self, f, data_index: f if f["path"] == server_path else upload(self, f, data_index)
        ref = {"path": server_path, "orig_name": photo.name, "meta": {"_type": "gradio.FileData"}}
        rng = np.random.default_rng(0)

        def call(image=ref):
            return client.predict(image=image, detector="cnn-resnet18", blur_sigma=float(rng.uniform(0, 5)),
                                  jpeg_quality=int(rng.integers(10, 100)), order="blur, jpeg",
                                  api_name="/degrade_score")

        floor_client = Client(floor_url, verbose=False)

        def floor_call(image=ref):
            return floor_client.predict(image, api_name="/noop")

        out, _ = call()  # warm-up: detector load, first decode of the photo
        floor_call(handle_file(str(photo)))
        times: dict[str, list[float]] = {"on_server": [], "upload_each_call": [], "gradio_floor_upload_each_call": []}
        for _ in range(calls):   # interleaved
            for key, fn, image in (("on_server", call, ref), ("upload_each_call", call, handle_file(str(photo))),
                                   ("gradio_floor_upload_each_call", floor_call, handle_file(str(photo)))):
                t = time.perf_counter()
                fn(image)
                times[key].append(time.perf_counter() - t)
        r = {"calls": calls, "server_seconds_last": out["seconds"], "source_size": out["source_size"],
             "scored_size": out["scored_size"]}
        for key, v in times.items():
            ms = np.array(v) * 1000
            r[key] = {"p50_ms": round(float(np.percentile(ms, 50)), 1), "p95_ms": round(float(np.percentile(ms, 95)), 1),
                      "min_ms": round(float(ms.min()), 1)}
        return r
    finally:
        demo.close()
        floor_app.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n", type=int, default=336, help="test images (the demo's test split has 336)")
    ap.add_argument("--calls", type=int, default=40)
    ap.add_argument("--skip-api", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    announce_device()
    torch.set_num_threads(2)
    r = {"sweep": bench_sweep(args.repeats, args.n)}
    if not args.skip_api:
        r["degrade_score_api"] = bench_api(args.calls)
    for section, values in r.items():
        print(f"[{section}]")
        for k, v in values.items():
            print(f"  {k:28s} {v}")
    write_results(args.out, r)


if __name__ == "__main__":
    main()
