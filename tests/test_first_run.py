"""First start: the demo images are derived in the background while a banner shows a progress bar."""

from __future__ import annotations

import threading

from detectlab.ui import first_run


def test_banner_shows_progress_then_disappears(monkeypatch):
    release = threading.Event()

    def work(progress):
        progress(120, 400, "synthetic images")
        release.wait(10)

    monkeypatch.setattr(first_run, "_current", None)
    prep = first_run.start_in_background(work)
    try:
        banner, timer = first_run.tick()
        assert prep.running and banner["visible"] is True
        assert "120/400" in banner["value"] and "<progress value='120' max='400'" in banner["value"]
        assert "30 %" in banner["value"] and "Detect works now" in banner["value"]
        assert timer.active is True
    finally:
        release.set()
    prep.thread.join(10)
    banner, timer = first_run.tick()
    assert banner["visible"] is False and banner["value"] == "" and timer.active is False


def test_a_failed_derivation_says_so_and_how_to_see_why(monkeypatch):
    def work(progress):
        raise OSError("disk full")

    monkeypatch.setattr(first_run, "_current", None)
    prep = first_run.start_in_background(work)
    prep.thread.join(10)
    banner, timer = first_run.tick()
    assert banner["visible"] is True and "disk full" in banner["value"]
    assert "detectlab demo materialize" in banner["value"] and timer.active is False


def test_nothing_starts_when_the_demo_is_there(demo_root, monkeypatch):
    monkeypatch.setattr(first_run, "_current", None)
    assert first_run.start_in_background() is None
    banner, timer = first_run.tick()
    assert banner["visible"] is False and timer.active is False
