"""Seconds from `python app.py` to the first served page, offline (demo already materialized).

    .venv/bin/python bench/bench_startup.py [--repeats 3]

The obvious alternative measured in the same run: a bare `import gradio, torch` (the floor no
app on this stack can beat).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_app() -> float:
    port = _free_port()
    env = dict(os.environ, DETECTLAB_HOME=tempfile.mkdtemp())
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read()
                return time.perf_counter() - start
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("app.py exited")
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait()


def time_imports() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import gradio, torch"], check=True,
                   env=dict(os.environ, GRADIO_ANALYTICS_ENABLED="False"))
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from detectlab.demo.build import ensure_demo

    ensure_demo()
    app = statistics.median(time_app() for _ in range(args.repeats))
    imports = statistics.median(time_imports() for _ in range(args.repeats))
    print(f"app.py to first page: {app:.1f} s (median of {args.repeats})")
    print(f"import gradio, torch:  {imports:.1f} s -> app start = {app / imports:.2f}x the bare imports")


if __name__ == "__main__":
    main()
