"""Slider release -> new verdict on the page, in headless chromium, for the three live sliders.

    .venv/bin/python bench/bench_sliders.py [--tries 12] [--previous OLD.json] [--out bench/results/sliders.json]

The real app (``serve(port=0)``, as the browser tests serve it) and Debian's chromium through
Playwright. A 720x477 JPEG photo (a held-out photo, resized) is uploaded once to each of the
Robustness (Live sliders), Attack and Detect tabs, each in its own page. Then, for ``--tries``
rounds, each slider is dragged with the mouse to a new value and released; the time is taken
in the page (``performance.now()``), from the event that sends the final value (the release; for
Detect's opacity, wired to ``.change``, the last ``input`` event of the drag) to the moment a
MutationObserver sees the verdict text name the new value (``chain blur 2.3``, ``ε = 0.040``,
``at opacity 0.35``):

* Robustness: the blur σ slider, the default detector pair (cnn-resnet18 and -aug); also the
  time until the P(fake) chart, drawn by a chained call, changes;
* Attack: the ε slider, FGSM on cnn-resnet18, resize scoring;
* Detect: the heatmap opacity slider, cnn-resnet18, resize scoring.

Sides, interleaved in a rotating order within each round so a noisy neighbour on the shared
CPU hits them alike: the three sliders, and the floor — a bare Gradio slider whose release
handler returns the value as Markdown, served by a second server in this process, once through
Gradio's queue and once without (``queue=False``). Each handler's own time is taken in-process
in the same run (and, beside it, the full re-score / the first eps on an upload), so the browser
number splits into work and round trip. ``--previous`` copies the browser numbers of this bench
run on an earlier commit into the results (different runs: not interleaved with these).
Target: <= 150 ms median from release to verdict on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, write_results  # noqa: E402

# a home of its own: another app on the shared home, stopping, removes the uploads made since it started
os.environ["DETECTLAB_HOME"] = tempfile.mkdtemp(prefix="detectlab-bench-sliders-")

from detectlab.config import set_offline_env  # noqa: E402

set_offline_env()
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: a held-out photo whose aspect is 720x477's (1024x682), brought to that size once
PHOTO_SOURCE = ROOT / "assets" / "heldout" / "full" / "p0005.jpg"
PHOTO_SIZE = (720, 477)
WAIT_MS = 120_000
#: slider positions cycled through (fractions of the track): every try lands on a value the previous did not
FRACTIONS = [0.15, 0.45, 0.3, 0.6, 0.2, 0.5, 0.35, 0.65, 0.25, 0.55, 0.4, 0.7]

#: Armed before the drag. ``fmt`` writes a slider value as the verdict will show it. The clock starts at the
#: event that sends the final value: the release (``pointerup``) for a slider wired to ``.release``, the
#: last ``input`` event for one wired to ``.change`` (it also fires while dragging). It stops when a
#: DOM mutation makes the verdict contain the final value's text, after the release. With ``alsoSel``
#: (a chart drawn by a chained call), the first change of that element after the verdict is timed too.
ARM = """([verdictSel, rangeSel, trigger, prefix, decimals, suffix, alsoSel]) => {
  const el = document.querySelector(verdictSel), range = document.querySelector(rangeSel);
  const also = alsoSel ? document.querySelector(alsoSel) : null;
  const fmt = (v) => prefix + (decimals < 0 ? String(Number(v)) : Number(v).toFixed(decimals)) + suffix;
  let lastInput = null, up = null, verdictAt = null, alsoAt = null;
  const seen = new Map();   // text wanted -> when the verdict first contained it
  window.__bench = new Promise((resolve) => {
    const finish = (t0) => {
      if (verdictAt === null || (also && alsoAt === null)) return;
      obs.disconnect();
      resolve([verdictAt - t0, also ? alsoAt - t0 : null]);
    };
    const check = () => {
      const now = performance.now(), text = el.innerText;
      const want = fmt(range.value);
      if (!seen.has(want) && text.includes(want)) seen.set(want, now);
      if (up === null) return;
      const t0 = trigger === 'release' ? up : lastInput;
      const at = seen.get(want);
      if (verdictAt === null && at !== undefined && at >= t0) verdictAt = at;
      finish(t0);
    };
    const obs = new MutationObserver((records) => {
      // the drawing itself (Plotly's SVG), not a status class on the block around it
      const plot = also && also.querySelector('.js-plotly-plot');
      if (plot && verdictAt !== null && alsoAt === null && records.some((r) => plot.contains(r.target)))
        alsoAt = performance.now();
      check();
    });
    obs.observe(document.body, {childList: true, subtree: true, characterData: true, attributes: !!also});
    range.addEventListener('input', () => { lastInput = performance.now(); seen.clear(); });
    window.addEventListener('pointerup', () => { up = performance.now(); check(); }, {once: true, capture: true});
  });
}"""


def commit() -> str:
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip()


def photo(tmp: Path) -> Path:
    from PIL import Image

    out = tmp / "photo_720x477.jpg"
    Image.open(PHOTO_SOURCE).convert("RGB").resize(PHOTO_SIZE, Image.Resampling.LANCZOS).save(out, quality=90)
    return out


def stats(ms: list[float]) -> dict:
    return {"median_ms": round(statistics.median(ms), 1), "min_ms": round(min(ms), 1), "tries": len(ms),
            "all_ms": [round(v, 1) for v in ms]}


# -- the floor: a bare slider whose release handler does nothing ------------------------------------------
def floor_app():
    import gradio as gr

    with gr.Blocks() as blocks:
        for queued in (True, False):
            tag = "queued" if queued else "direct"
            s = gr.Slider(0, 1, value=0, step=0.05, label=f"floor {tag}", elem_id=f"floor-{tag}")
            out = gr.Markdown("none", elem_id=f"floor-{tag}-out")
            s.release(lambda v, tag=tag: f"{tag} value {v:.2f}", s, out, api_name=False, queue=queued,
                      show_progress="hidden", trigger_mode="always_last")
    return blocks


# -- one slider move, timed in the page ---------------------------------------------------------------
def move(page, slider: str, verdict: str, fraction: float, shows: tuple, also: str | None = None) -> list:
    """Drag ``slider``'s thumb to ``fraction`` of its track and release; [ms from the event that sends the final
    value to the verdict showing it, ms to ``also`` changing after it (or None)] (``shows``: trigger, then prefix,
    decimals, suffix of that text; see ARM)."""
    track = page.locator(f"{slider} input[type=range]")
    track.scroll_into_view_if_needed()
    box = track.bounding_box()
    lo, hi = float(track.get_attribute("min")), float(track.get_attribute("max"))
    y = box["y"] + box["height"] / 2
    now = (float(track.input_value()) - lo) / (hi - lo)
    page.mouse.move(box["x"] + box["width"] * now, y)
    page.evaluate(ARM, [verdict, f"{slider} input[type=range]", *shows, also])
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * fraction, y, steps=4)
    page.mouse.up()
    return page.evaluate(f"Promise.race([window.__bench, new Promise((_, no) => "
                         f"setTimeout(() => no(new Error('no verdict for {slider}')), {WAIT_MS}))])")


# -- the three tabs, opened and loaded with the photo ---------------------------------------------------------
def open_tabs(context, url: str, image: Path) -> dict:
    from playwright.sync_api import expect

    pages = {}
    rob = context.new_page()
    rob.goto(url)
    rob.get_by_role("tab", name="Robustness").click()
    rob.get_by_role("tab", name="Live sliders").click()
    rob.locator("#rob-upload input[type=file]").set_input_files(str(image))
    expect(rob.locator("#rob-live-verdict")).to_contain_text(f"{image.name} · chain none ·", timeout=WAIT_MS)
    pages["robustness blur"] = (rob, "#rob-blur", "#rob-live-verdict", ("release", "· chain blur ", -1, " ·"),
                                 "#rob-live-bars")
    att = context.new_page()
    att.goto(url)
    att.get_by_role("tab", name="Attack", exact=True).click()
    att.locator("#attack-upload input[type=file]").set_input_files(str(image))
    expect(att.locator("#attack-verdict")).to_contain_text("ε = 0.010", timeout=WAIT_MS)
    pages["attack eps"] = (att, "#attack-eps", "#attack-verdict", ("release", "ε = ", 3, ""), None)
    det = context.new_page()
    det.goto(url)
    det.get_by_role("tab", name="Detect").click()
    det.locator("#detect-upload input[type=file]").set_input_files(str(image))
    expect(det.locator("#detect-verdict")).to_contain_text(image.name, timeout=WAIT_MS)
    expect(det.locator("#detect-verdict")).to_contain_text("at opacity 0.50", timeout=WAIT_MS)
    pages["detect opacity"] = (det, "#detect-opacity", "#detect-verdict", ("change", "at opacity ", 2, ""), None)
    return pages


def open_floor(context, url: str) -> dict:
    page = context.new_page()
    page.goto(url)
    return {f"floor {tag}": (page, f"#floor-{tag}", f"#floor-{tag}-out", ("release", f"{tag} value ", 2, ""), None)
            for tag in ("queued", "direct")}


# -- the server's own time, in-process ------------------------------------------------------------------
def handler_times(image: Path, repeats: int) -> dict:
    """ms of each slider's handler called in-process as the page calls it; beside it, what the same release
    costs without the kept state: Detect's full re-score (what opacity ran before) and the first eps on an
    upload (decode and FGSM gradient not yet kept)."""
    from detectlab.attacks import playground
    from detectlab.data import filecache
    from detectlab.robustness import DEFAULT_ORDER
    from detectlab.ui import attack_tab, detect_tab, robustness_tab, state

    choices = list(state.detector_choices())
    pair = robustness_tab._default_detectors(choices)
    shown = detect_tab.rescore(str(image), choices[0], "gradcam", 0.5, "resize")[2]
    scores = robustness_tab.live(str(image), pair, list(DEFAULT_ORDER), 2.0, 100, 1024, 1.0, 0.0, 1.0, False)[2]

    def eps_cold(k):
        filecache.clear()
        playground._directions = playground._Kept(4)
        return attack_tab.playground_eps(str(image), attack_tab.DEFAULT_DETECTOR, "fgsm", 0.01 + 0.001 * (k % 50))

    sides = {
        "robustness blur": {
            "now": lambda k: robustness_tab.live(str(image), pair, list(DEFAULT_ORDER), 0.5 + k % 10,
                                                 100, 1024, 1.0, 0.0, 1.0, False),
            "chart (chained call)": lambda k: robustness_tab.bars(scores)},
        "attack eps": {
            "now": lambda k: attack_tab.playground_eps(str(image), attack_tab.DEFAULT_DETECTOR, "fgsm",
                                                       0.01 + 0.001 * (k % 50)),
            "first eps on an upload": eps_cold},
        "detect opacity": {
            "now": lambda k: detect_tab.reblend(shown, 0.05 * (k % 9)),  # never 0.5, the opacity shown: a skip
            "full re-score": lambda k: detect_tab.rescore(str(image), choices[0], "gradcam", 0.05 * (k % 20))},
    }
    out = {}
    for name, fns in sides.items():
        for fn in fns.values():
            fn(99)  # warm: the model loaded
        times = {side: [] for side in fns}
        for k in range(repeats):
            for side, fn in (fns.items() if k % 2 else reversed(fns.items())):
                t = time.perf_counter()
                fn(k)
                times[side].append(1000 * (time.perf_counter() - t))
        out[name] = {side: stats(v) for side, v in times.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tries", type=int, default=12, help="slider moves per slider (>= 10)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--previous", default=None,
                    help="a results file of this bench run on an earlier commit: its browser numbers are copied in")
    args = ap.parse_args()
    import torch
    from playwright.sync_api import sync_playwright

    from detectlab.demo.build import ensure_demo
    from detectlab.ui.app import serve

    ensure_demo()
    device = f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads " \
             f"{torch.get_num_threads()}); browser: headless chromium on the same machine"
    print(f"device: {device}")
    load_before = os.getloadavg()
    print(f"load average at the start: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-sliders-"))
    image = photo(tmp)
    served, floor = serve(host="127.0.0.1", port=0), serve(floor_app(), host="127.0.0.1", port=0)
    browser_ms: dict[str, list[float]] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.set_default_timeout(WAIT_MS)
            sides = {**open_tabs(context, served.url, image), **open_floor(context, floor.url)}
            names = list(sides)
            for name in names:  # one untimed move each: first-call costs (plotly.js, a detector's first attack)
                move(*sides[name][:3], 0.1, *sides[name][3:])
            for k in range(args.tries):
                order = names[k % len(names):] + names[:k % len(names)]
                for name in order:
                    page, slider, verdict, shows, also = sides[name]
                    page.bring_to_front()
                    ms, also_ms = move(page, slider, verdict, FRACTIONS[k % len(FRACTIONS)], shows, also)
                    browser_ms.setdefault(name, []).append(ms)
                    if also_ms is not None:
                        browser_ms.setdefault(f"{name}: chart redrawn", []).append(also_ms)
            browser.close()
        server = handler_times(image, max(args.tries, 10))
    finally:
        served.close()
        floor.close()
    load_after = os.getloadavg()
    results = {"device": device, "commit": commit(), "photo": f"{PHOTO_SOURCE.relative_to(ROOT)} resized to {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]}"
               " (JPEG 90)", "load_average_start": [round(v, 2) for v in load_before],
               "load_average_end": [round(v, 2) for v in load_after], "target_median_ms": 150,
               "browser": {n: stats(v) for n, v in browser_ms.items()}, "server_handler": server}
    if args.previous:
        prev = json.loads(Path(args.previous).read_text())
        results["previous_run"] = {k: prev.get(k) for k in ("commit", "load_average_start", "load_average_end",
                                                            "browser")}
    print(f"\n{'release -> verdict on the page':24s} {'median':>9s} {'min':>9s}   server handler (median, min)")
    for name, s in results["browser"].items():
        was = results.get("previous_run", {}).get("browser", {}).get(name)
        extra = "   " + " · ".join(f"{side} {h['median_ms']:.1f}, {h['min_ms']:.1f} ms"
                                   for side, h in server.get(name, {}).items())
        before = f"   (previous commit: median {was['median_ms']:.1f} ms)" if was else ""
        print(f"{name:24s} {s['median_ms']:6.1f} ms {s['min_ms']:6.1f} ms{extra}{before}")
    print(f"load average at the end: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    write_results(args.out, results)


if __name__ == "__main__":
    main()
