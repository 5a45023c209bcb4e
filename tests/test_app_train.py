"""Train tab in headless chromium: launch a tiny run, watch its curve grow, find its checkpoint in Detect."""

from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

EPOCHS = 8


@pytest.fixture
def tiny_set(demo_root, tmp_path_factory):
    """40 real and 40 synthetic demo images in a data set of their own, inside the data roots."""
    from detectlab import config

    root = config.datasets_dir() / tmp_path_factory.mktemp("tiny").name
    for src, dst in (("real", "real"), ("pixel-shuffle", "tinygan")):
        (root / dst).mkdir(parents=True)
        for f in sorted((demo_root / src).glob("*.png"))[:40]:
            shutil.copy(f, root / dst / f.name)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _fill_number(page, label, value):
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Tab")


def test_launch_watch_finish_and_use_checkpoint(page, tiny_set):
    page.get_by_role("tab", name="Train").click()
    folder = page.get_by_label("…or a folder inside the data roots", exact=True)
    folder.fill(str(tiny_set))
    folder.press("Enter")
    expect(page.locator("#train-generators")).to_contain_text("tinygan")  # the set's own generators
    _fill_number(page, "Input size (px)", 32)
    _fill_number(page, "Epochs", EPOCHS)
    _fill_number(page, "Batch size", 16)
    page.locator("#train-name textarea, #train-name input").first.fill("browser-run")
    page.locator("#train-launch").click()
    selected = page.locator("#train-selected textarea, #train-selected input").first
    expect(selected).not_to_have_value("", timeout=30_000)
    run_id = selected.input_value()

    progress = page.locator("#train-progress")
    points = page.locator("#train-curves .scatterlayer .trace").first.locator(".points path")  # train loss
    # mid-run: the curve has points while the run still says "running" (checked in one DOM snapshot)
    page.wait_for_function(
        """marker => {
               const trace = document.querySelector('#train-curves .scatterlayer .trace');
               return trace !== null && trace.querySelectorAll('.points path').length >= 1
                   && document.querySelector('#train-progress').innerText.includes(marker);
           }""",
        arg=f"Run {run_id}: running", timeout=300_000)
    mid = points.count()
    expect(progress).to_contain_text(f"Run {run_id}: finished", timeout=300_000)
    expect(points).to_have_count(EPOCHS, timeout=30_000)  # the end: every epoch drawn
    assert 1 <= mid < EPOCHS, mid  # drawn while the run went on, then grew
    expect(page.locator("#train-history")).to_contain_text(run_id)

    page.get_by_role("tab", name="Detect").click()
    page.locator("#detect-refresh").click()
    page.locator("#detect-detector input").first.click()
    expect(page.get_by_role("option", name=run_id).or_(
        page.locator("[role=option]", has_text=run_id))).to_be_visible(timeout=20_000)
