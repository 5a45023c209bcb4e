"""Concurrency: 8 clients call ``/detect`` with heatmaps and ``/degrade_score`` at once.

Eight ``gradio_client`` clients hammer the app's queue at once (4 requests run at a time, each
Grad-CAM hooking the same cached model), each sending ``DETECTLAB_CONCURRENCY_REQUESTS`` requests
(4 by default: 32 in all, two of every three a heatmap; set it higher for a soak, e.g. 60 for about
the issue's minute-long reproduction). Bounded by count, not by time, so the test does the same work
on a fast or a loaded machine. Every answer must equal the one the same request got alone:
P(fake) within 1e-5, the heatmap overlay within 1e-4, and no request may fail. Requests
served, p50/p95 latency and the server's peak RSS are printed for the closing note.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import psutil
import pytest
from PIL import Image

REQUESTS = int(os.environ.get("DETECTLAB_CONCURRENCY_REQUESTS", 4))  # per client
CLIENTS = 8
DETECTOR = "cnn-resnet18"                       # Grad-CAM on a shared cached model: the race a per-model lock prevents
DEGRADE = dict(blur_sigma=1.0, jpeg_quality=70)  # the second endpoint: a chain scored by the Durrall baseline


@pytest.fixture(scope="module")
def images(demo_root):
    from detectlab.data import discover, split

    test = split(discover(demo_root).samples, seed=0)["test"]
    picked = {}
    for s in test:
        picked.setdefault(s.generator, s.path)
    return list(picked.values())[:4]


def _detect(client, path):
    from gradio_client import handle_file

    info, heatmap = client.predict(handle_file(str(path)), DETECTOR, "gradcam", 0.5, api_name="/detect")
    return float(info["p_fake"]), np.asarray(Image.open(heatmap).convert("RGB"), np.float32) / 255


def _degrade(client, path):
    from gradio_client import handle_file

    info, _ = client.predict(handle_file(str(path)), "spectrum-durrall", api_name="/degrade_score", **DEGRADE)
    return float(info["detectors"][0]["p_fake"]), None


CALLS = {"detect": _detect, "degrade_score": _degrade}


class RssPeak(threading.Thread):
    """Polls this process's RSS (the app is served from it) until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak, self._stop_event = 0, threading.Event()

    def run(self) -> None:
        proc = psutil.Process()
        while True:  # a sample every 0.1 s until stopped
            self.peak = max(self.peak, proc.memory_info().rss)
            if self._stop_event.wait(0.1):
                break

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def test_eight_clients_get_the_sequential_answers(app_url, images):
    from gradio_client import Client

    clients = [Client(app_url, verbose=False) for _ in range(CLIENTS)]
    expected = {(name, str(p)): CALLS[name](clients[0], p) for name in CALLS for p in images}

    errors, mismatches, latencies = [], [], []
    lock = threading.Lock()

    def work(k: int) -> None:
        for n in range(k, k + REQUESTS):  # client k starts at its own place in the detect/degrade mix
            name = "degrade_score" if n % 3 == 2 else "detect"
            path = images[n % len(images)]
            start = time.perf_counter()
            try:
                p, heat = CALLS[name](clients[k], path)
            except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
                with lock:
                    errors.append(f"{name} {path.name}: {exc!r}")
                continue
            took = time.perf_counter() - start
            p0, heat0 = expected[(name, str(path))]
            with lock:
                latencies.append((name, took))
                if abs(p - p0) > 1e-5 or (heat0 is not None and float(np.abs(heat - heat0).max()) > 1e-4):
                    mismatches.append(f"{name} {path.name}: P(fake) {p} vs {p0}")

    rss = RssPeak()
    rss.start()
    began = time.perf_counter()
    threads = [threading.Thread(target=work, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    peak = rss.stop()
    seconds = time.perf_counter() - began

    times = np.array([t for _, t in latencies])
    served = {name: sum(1 for n, _ in latencies if n == name) for name in CALLS}
    print(f"\n{CLIENTS} clients x {REQUESTS} requests in {seconds:.1f} s: {len(latencies)} served ({served}), "
          f"{len(errors)} errors, {len(mismatches)} mismatches; latency p50 {np.percentile(times, 50):.2f} s, "
          f"p95 {np.percentile(times, 95):.2f} s; peak server RSS {peak / 2**20:.0f} MB")
    assert errors == []
    assert mismatches == []
    assert len(latencies) == CLIENTS * REQUESTS
    assert served["detect"] >= CLIENTS and served["degrade_score"] >= 1
