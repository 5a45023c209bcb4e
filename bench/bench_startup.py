"""Seconds from `python app.py` to the first served page, offline (demo already materialized).

    .venv/bin/python bench/bench_startup.py [--repeats 3]

The obvious alternative measured in the same run: a bare `import gradio, torch` (the floor no
app on this stack can beat).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import announce_device, running_app  # noqa: E402


def time_app() -> float:
    """``app.py --port 0``: time to the first page."""
    start = time.perf_counter()
    with running_app(dict(os.environ, DETECTLAB_HOME=tempfile.mkdtemp())) as url:
        urllib.request.urlopen(url, timeout=30).read()
        return time.perf_counter() - start


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
    announce_device()
    from detectlab.demo.build import ensure_demo

    ensure_demo()
    apps, imports = [], []
    for _ in range(args.repeats):  # interleaved, so both sides see the same machine load
        apps.append(time_app())
        imports.append(time_imports())
    app, imp = statistics.median(apps), statistics.median(imports)
    print(f"app.py to first page: min {min(apps):.1f} s, median {app:.1f} s ({args.repeats} repeats)")
    print(f"import gradio, torch:  min {min(imports):.1f} s, median {imp:.1f} s "
          f"-> app start = {app / imp:.2f}x the bare imports (the floor)")

if __name__ == "__main__":
    main()
