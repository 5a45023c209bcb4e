"""First start: the demo images are derived in the background while a banner shows a progress bar."""

from __future__ import annotations

import shutil
import threading

import pytest

from detectlab.ui import first_run


def test_banner_shows_progress_then_disappears(monkeypatch):
    release = threading.Event()

    def work(progress):
        progress(120, 400, "synthetic images")
        release.wait(10)

    monkeypatch.setattr(first_run, "_current", None)
    prep = first_run.start_in_background(work)
    try:
        banner, timer, ready = first_run.tick()
        assert prep.running and banner["visible"] is True and ready is False
        assert "<progress value='300' max='1000'" in banner["value"] and "30 %" in banner["value"]
        assert "synthetic images" in banner["value"] and "Detect works now" in banner["value"]
        assert "measuring the rate" in banner["value"]  # no time estimate before a rate was measured
        assert timer.active is True
    finally:
        release.set()
    prep.thread.join(10)
    banner, timer, ready = first_run.tick()
    assert banner["visible"] is False and banner["value"] == "" and timer.active is False and ready is True


def test_banner_fraction_never_decreases_and_the_eta_comes_from_the_measured_rate(monkeypatch):
    """Reports that restart per stage (as a per-generator count would) cannot move the bar back; the time
    left is the rest of the work at the rate measured since the first report."""
    clock = [1000.0]
    monkeypatch.setattr(first_run.time, "monotonic", lambda: clock[0])
    prep = first_run.Preparation(started=clock[0])
    shown = []
    for t, done, total, desc in [(0, 0, 100, "a"), (10, 20, 100, "a"), (20, 58, 100, "b"), (30, 21, 100, "c"),
                                 (40, 60, 100, "c"), (50, 84, 100, "d"), (60, 50, 200, "e")]:
        clock[0] = 1000.0 + t
        prep(done, total, desc)
        shown.append(prep.fraction)
    assert shown == sorted(shown) and shown[-1] == 0.84
    # 0.84 of the work in 60 s: 0.16 left at 0.014/s -> about 11 s
    assert prep.seconds_left() == pytest.approx(0.16 / (0.84 / 60), rel=1e-6)
    assert "about 11 s left at the rate measured so far" in prep.banner() and "84 %" in prep.banner()


def test_pickers_fill_in_when_the_first_start_ends(browser, tmp_path, monkeypatch):
    """A page opened while the first start derives the demo: when the banner ends, the Localize demo picker
    lists the new images without a reload (and says how many)."""
    from playwright.sync_api import expect

    from detectlab import config
    from detectlab.demo.build import demo_lock, ensure_demo
    from detectlab.localize.dataset import split_examples
    from detectlab.ui.app import build_app, serve

    demo = tmp_path / "assets" / "demo"
    (demo / "real").mkdir(parents=True)
    for f in sorted((config.DEMO_DIR / "real").glob("*.png"))[::30][:40]:  # 40 crops of different photos
        shutil.copy(f, demo / "real" / f.name)
    monkeypatch.setattr(config, "DEMO_DIR", demo)
    monkeypatch.setattr(config, "DEMO_INPAINT_DIR", tmp_path / "assets" / "demo-inpainted")
    monkeypatch.setattr(first_run, "_current", None)
    go = threading.Event()

    def work(progress, cancel, on_wait):
        with demo_lock(config.DEMO_DIR, on_wait=on_wait, cancel=cancel):  # held from the start, as a derivation
            go.wait(60)
            return ensure_demo(progress=progress, cancel=cancel, on_wait=on_wait)

    prep = first_run.start_in_background(work)
    served = serve(build_app(), host="127.0.0.1", port=0)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(served.url)
        expect(page.locator("#first-run-banner")).to_contain_text("First start")
        page.get_by_role("tab", name="Localize").click()
        picker = page.locator("#localize-demo")
        expect(picker).to_contain_text("no demo images yet")
        go.set()
        expect(page.locator("#first-run-banner")).to_be_hidden(timeout=120_000)
        assert prep.ready
        n = len(split_examples(config.DEMO_INPAINT_DIR))
        assert n > 0
        expect(picker).to_contain_text(f"{n} demo images", timeout=30_000)  # no reload, no click
        page.locator("#localize-demo input").click()
        expect(page.locator("#localize-demo [role=option], ul.options li")).to_have_count(n)
    finally:
        go.set()
        context.close()
        prep.stop(30)
        served.server.should_exit = True
        served.thread.join(20)


def test_a_failed_derivation_says_so_and_how_to_see_why(monkeypatch):
    def work(progress):
        raise OSError("disk full")

    monkeypatch.setattr(first_run, "_current", None)
    prep = first_run.start_in_background(work)
    prep.thread.join(10)
    banner, timer, ready = first_run.tick()
    assert banner["visible"] is True and "disk full" in banner["value"]
    assert "detectlab demo materialize" in banner["value"] and timer.active is False and ready is False


def test_nothing_starts_when_the_demo_is_there(demo_root, monkeypatch):
    monkeypatch.setattr(first_run, "_current", None)
    assert first_run.start_in_background() is None
    banner, timer, ready = first_run.tick()
    assert banner["visible"] is False and timer.active is False and ready is True
