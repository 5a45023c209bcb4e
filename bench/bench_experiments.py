"""From one click in the Experiments tab to the finished table, cold, on the demo with the CPU preset.

    .venv/bin/python bench/bench_experiments.py [--repeats 3] [--only cross-generator] [--out FILE]

Each try starts the app as a fresh process with a fresh ``DETECTLAB_HOME`` (so the backbone's features
of the demo's images are extracted again and no model is cached), opens the page in headless chromium,
picks the experiment and clicks Run; the time runs from the click to the status line saying
"finished" with the table on screen: the queue, the worker process starting (importing torch), the
feature extraction, the probes, the card and figures written and the page's polling all count.

The obvious alternative, measured in the same run and interleaved with it: the same experiment from
the command line (``detectlab experiment run NAME``, also from a fresh home), which does the same
work without the queue, the worker and the page. The app's own start (to the first page) is printed
per try as well; it is paid once per session, not per click. The demo is derived first if this is
a fresh clone's first use (its time is printed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import announce_device, running_app, write_results  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
LABELS = {"cross-generator": "Cross-generator matrix — [Petrželková 2024] Table 4.1",
          "leave-one-out": "Leave one generator out — [Petrželková 2024] Table 4.2"}


def _env() -> dict:
    return dict(os.environ, DETECTLAB_HOME=tempfile.mkdtemp(prefix="detectlab-bench-exp-"), HF_HUB_OFFLINE="1",
                YOLO_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")


def time_tab(browser, name: str, timeout: float) -> dict:
    """Start the app (fresh home), click Run on ``name`` in the Experiments tab, wait for the table."""
    from playwright.sync_api import expect

    start = time.perf_counter()
    with running_app(_env()) as url:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.goto(url)
        page.get_by_role("tab", name="Experiments").click(timeout=120_000)
        started = time.perf_counter() - start
        page.locator("#exp-name input").click()
        page.get_by_role("option", name=LABELS[name]).click()
        expect(page.locator("#exp-name input")).to_have_value(LABELS[name])
        t0 = time.perf_counter()
        page.locator("#exp-run").click()
        status = page.locator("#exp-status")
        expect(status).to_contain_text("finished", timeout=timeout * 1000)
        expect(page.locator("#exp-table")).to_contain_text("tested_on", timeout=60_000)
        seconds = time.perf_counter() - t0
        text = status.inner_text()
        context.close()
        return {"seconds": seconds, "app_start": started, "status": text.strip()}


def time_cli(name: str) -> float:
    out = tempfile.mkdtemp(prefix="detectlab-bench-exp-cards-")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "detectlab", "experiment", "run", name, "--out", out, "--quiet"], cwd=ROOT,
                   env=_env(), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", action="append", choices=list(LABELS), help="one experiment (repeatable)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds one click may take")
    ap.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = ap.parse_args()
    announce_device()
    from playwright.sync_api import sync_playwright

    import detectlab
    from detectlab.demo.build import ensure_demo, is_materialized

    print(f"detectlab from {Path(detectlab.__file__).parent}; {os.cpu_count()} CPUs; load average "
          f"{os.getloadavg()[0]:.2f}")
    if not is_materialized():
        t = time.perf_counter()
        ensure_demo()
        print(f"demo derived (a fresh clone's first use, once): {time.perf_counter() - t:.1f} s")
    names = args.only or list(LABELS)
    rows = {n: {"tab": [], "cli": [], "app_start": []} for n in names}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        for r in range(args.repeats):  # interleaved: tab and command line of each experiment, in turn
            for n in names:
                tab = time_tab(browser, n, args.timeout)
                cli = time_cli(n)
                rows[n]["tab"].append(tab["seconds"])
                rows[n]["app_start"].append(tab["app_start"])
                rows[n]["cli"].append(cli)
                print(f"  try {r + 1} {n}: click → table {tab['seconds']:.1f} s (app start {tab['app_start']:.1f} s; "
                      f"{tab['status']}); command line {cli:.1f} s", flush=True)
        browser.close()
    print()
    for n, v in rows.items():
        tab, cli = statistics.median(v["tab"]), statistics.median(v["cli"])
        print(f"{n}: click → table min {min(v['tab']):.1f} s, median {tab:.1f} s; command line min {min(v['cli']):.1f} s, "
              f"median {cli:.1f} s -> tab = {tab / cli:.2f}x the command line; app start median "
              f"{statistics.median(v['app_start']):.1f} s ({args.repeats} tries, cold each)")
    write_results(args.out, {"rows": rows, "cpus": os.cpu_count()})


if __name__ == "__main__":
    main()
