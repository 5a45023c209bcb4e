"""Bench: the REST route ``POST /api/v1/detect`` against the same call in-process, and the Gradio ``/detect``.

The app runs as a user starts it (``app.py --port 0``, its own process); this process is the client.
Sides, interleaved within each repeat:

- one image: ``POST /api/v1/detect`` (httpx, one connection kept open) against ``score_files`` on the
  same file in this process (the package function the route calls, same decode), the Gradio ``/detect``
  through gradio_client (which also computes a Grad-CAM heatmap and writes its PNG: it has no way to
  skip them), and the floor: the detector's forward pass alone on an already decoded tensor;
- a batch: one request with N images (default 64) against ``score_files`` on the same N files in-process,
  and the floor: one forward pass on the decoded batch.

Both processes run OpenMP with ``OMP_WAIT_POLICY=PASSIVE``: spinning threads of one process would
otherwise slow the next side in the other. Targets (idle machine): one-image REST p50 <= 1.3x in-process; batch REST throughput >= 0.8x in-process.
Run: ``.venv/bin/python bench/bench_api.py [--detector cnn-resnet18] [--repeats 3] [--requests 30]
[--batch 64] [--out bench/results/api.json]`` (without ``--out`` nothing is written).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Both processes share the cores: OpenMP's threads would otherwise spin for a while after each forward and
# slow whichever side runs next in the other process. Set before torch loads, and passed to the app.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import running_app, write_results  # noqa: E402


def _stats(ms: list[float]) -> dict:
    return {"min_ms": round(min(ms), 2), "p50_ms": round(statistics.median(ms), 2), "n": len(ms)}


def main() -> None:
    from detectlab import config

    config.set_offline_env()
    parser = argparse.ArgumentParser()
    parser.add_argument("--detector", default="cnn-resnet18")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--requests", type=int, default=30, help="one-image requests per repeat and side")
    parser.add_argument("--batch", type=int, default=64, help="images in the batch request")
    parser.add_argument("--out", default=None, help="write the numbers here as JSON (default: print only)")
    args = parser.parse_args()

    import httpx
    import torch
    from gradio_client import Client, handle_file

    from detectlab import catalog
    from detectlab.data.decode import load_tensor
    from detectlab.detect.predict import score_files

    loaded = catalog.load_detector(args.detector)
    device = config.device()
    files = sorted(p for p in config.DEMO_DIR.rglob("*.png"))[: args.batch]
    one = files[0]
    payload_one = [("files", (one.name, one.read_bytes(), "image/png"))]
    payload_batch = [("files", (p.name, p.read_bytes(), "image/png")) for p in files]
    x_one = load_tensor(one, loaded.detector.preprocess.input_size)[None].to(device)
    x_batch = torch.stack([load_tensor(p, loaded.detector.preprocess.input_size) for p in files]).to(device)
    print(f"device: {device} ({os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}); detector "
          f"{args.detector}; {args.repeats} repeats x {args.requests} one-image requests; batch of {len(files)}",
          flush=True)

    env = dict(os.environ, DETECTLAB_HOME=tempfile.mkdtemp(prefix="bench-api-"))
    with running_app(env) as url, httpx.Client(base_url=url + "api/v1", timeout=300) as http:
        gradio = Client(url, verbose=False)

        def rest_one():
            r = http.post("/detect", files=payload_one, data={"detector": args.detector})
            r.raise_for_status()

        def inproc_one():
            score_files(loaded, [one])

        def gradio_one():
            gradio.predict(handle_file(str(one)), args.detector, "gradcam", 0.5, "resize", api_name="/detect")

        def floor_one():
            with torch.no_grad():
                loaded.detector(x_one)

        def rest_batch():
            r = http.post("/detect", files=payload_batch, data={"detector": args.detector})
            r.raise_for_status()
            assert r.json()["failed"] == 0

        def inproc_batch():
            score_files(loaded, files)

        def floor_batch():
            with torch.no_grad():
                loaded.detector(x_batch)

        single = {"REST /api/v1/detect": rest_one, "in-process score_files": inproc_one,
                  "Gradio /detect (gradio_client, with heatmap)": gradio_one, "forward pass only (floor)": floor_one}
        batch = {"REST /api/v1/detect": rest_batch, "in-process score_files": inproc_batch,
                 "forward pass only (floor)": floor_batch}
        for fn in (*single.values(), *batch.values()):  # warm-up: the server's model cache, threads, connections
            fn()
        one_ms = {k: [] for k in single}
        repeat_p50 = {k: [] for k in single}
        batch_ms = {k: [] for k in batch}
        for rep in range(args.repeats):
            this = {k: [] for k in single}
            for _ in range(args.requests):
                for name, fn in single.items():  # interleaved request by request
                    t = time.perf_counter()
                    fn()
                    this[name].append(1000 * (time.perf_counter() - t))
            for name, ms in this.items():
                one_ms[name] += ms
                repeat_p50[name].append(statistics.median(ms))
            for name, fn in batch.items():
                t = time.perf_counter()
                fn()
                batch_ms[name].append(1000 * (time.perf_counter() - t))
            print(f"repeat {rep + 1}: one image p50 " + ", ".join(f"{k} {statistics.median(v):.1f} ms"
                                                                   for k, v in this.items()), flush=True)
        gradio.close()

    ref = statistics.median(one_ms["in-process score_files"])
    floor = statistics.median(one_ms["forward pass only (floor)"])
    print("\none image per request (all requests of all repeats):")
    single_out = {}
    for name, ms in one_ms.items():
        s = _stats(ms)
        s.update(x_in_process=round(s["p50_ms"] / ref, 2), x_floor=round(s["p50_ms"] / floor, 2),
                 repeat_p50_ms=[round(v, 2) for v in repeat_p50[name]])
        single_out[name] = s
        print(f"  {name:46s} min {s['min_ms']:8.2f} ms  p50 {s['p50_ms']:8.2f} ms  x{s['x_in_process']:.2f} of "
              f"in-process  x{s['x_floor']:.2f} of the floor")
    print(f"\none request of {len(files)} images (images per second from the median):")
    batch_out = {}
    ref_b = statistics.median(batch_ms["in-process score_files"])
    for name, ms in batch_ms.items():
        med = statistics.median(ms)
        batch_out[name] = {"min_ms": round(min(ms), 1), "median_ms": round(med, 1),
                           "images_per_s": round(len(files) / med * 1000, 1),
                           "throughput_x_in_process": round(ref_b / med, 2)}
        print(f"  {name:46s} min {min(ms):8.1f} ms  median {med:8.1f} ms  {len(files) / med * 1000:7.1f} img/s  "
              f"x{ref_b / med:.2f} of in-process throughput")
    rest_ratio = single_out["REST /api/v1/detect"]["x_in_process"]
    batch_ratio = batch_out["REST /api/v1/detect"]["throughput_x_in_process"]
    print(f"\ntargets: one-image REST p50 {rest_ratio:.2f}x in-process (target <= 1.3x): "
          f"{'met' if rest_ratio <= 1.3 else 'missed'}; batch throughput {batch_ratio:.2f}x (target >= 0.8x): "
          f"{'met' if batch_ratio >= 0.8 else 'missed'}")
    write_results(args.out, {"device": str(device), "omp_wait_policy": os.environ["OMP_WAIT_POLICY"], "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                             "detector": args.detector, "repeats": args.repeats, "requests_per_repeat": args.requests,
                             "batch_images": len(files), "one_image": single_out, "batch": batch_out,
                             "targets": {"one_image_x_in_process": rest_ratio, "batch_throughput_x_in_process": batch_ratio}})


if __name__ == "__main__":
    main()
