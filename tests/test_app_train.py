"""Train tab in headless chromium: launch a tiny run, watch its curve grow, find its checkpoint in Detect."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def _fill_number(page, label, value):
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Tab")


def test_launch_watch_finish_and_use_checkpoint(page):
    page.get_by_role("tab", name="Train").click()
    for gen in ("transposed-conv", "resize-conv"):  # one generator keeps the run small
        page.locator("#train-generators").get_by_label(gen).uncheck()
    _fill_number(page, "Input size (px)", 64)
    _fill_number(page, "Epochs", 3)
    _fill_number(page, "Batch size", 32)
    page.locator("#train-name textarea, #train-name input").first.fill("browser-run")
    page.locator("#train-launch").click()
    selected = page.locator("#train-selected textarea, #train-selected input").first
    expect(selected).not_to_have_value("", timeout=30_000)
    run_id = selected.input_value()

    # the curve gains points while the run goes on
    seen = set()
    deadline = time.monotonic() + 300
    progress = page.locator("#train-progress")
    while time.monotonic() < deadline:
        n = page.locator("#train-curves .scatterlayer .trace").first.locator(".points path").count()
        seen.add(n)
        if "finished" in progress.inner_text():
            break
        time.sleep(0.3)
    assert "finished" in progress.inner_text(), progress.inner_text()
    assert len({n for n in seen if n > 0}) >= 2, seen  # updated at least twice
    expect(page.locator("#train-history")).to_contain_text(run_id)

    page.get_by_role("tab", name="Detect").click()
    page.locator("#detect-refresh").click()
    page.locator("#detect-detector input").first.click()
    expect(page.get_by_role("option", name=run_id).or_(
        page.locator("[role=option]", has_text=run_id))).to_be_visible(timeout=20_000)
