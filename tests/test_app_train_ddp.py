"""Train tab in headless chromium: a run in two data-parallel processes (torchrun + DDP, gloo) shows as one run,
with one set of curves and one history entry."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.test_app_train import (_fill_number, _launch, _no_run_outlives_its_test, tiny_set,  # noqa: F401
                                  train_tab_on)

pytestmark = pytest.mark.browser

ITERATIONS, BATCH = 6, 8  # 64 training images / (2 x 8) = 4 steps an epoch: 2 epochs


def test_a_two_process_run_from_the_train_tab_is_one_run_with_one_set_of_curves(page, tiny_set):
    from detectlab.ui import state

    before = {r.id for r in state.manager().store.list()}
    train_tab_on(page, tiny_set)
    _fill_number(page, "Input size (px)", 32)
    _fill_number(page, "Iterations (0 = use epochs)", ITERATIONS)
    _fill_number(page, "Batch size", BATCH)
    box = page.locator("#train-processes input")
    box.fill("2")
    box.press("Tab")
    page.locator("#train-name textarea, #train-name input").first.fill("browser-ddp")
    run_id = _launch(page, "#train-launch")

    progress = page.locator("#train-progress")
    expect(progress).to_contain_text(f"Run {run_id}: finished", timeout=120_000)
    expect(progress).to_contain_text("2 processes (DDP, gloo): global batch 2 x 8")
    # one set of curves: the per-step loss once, and the per-epoch train loss with one point per epoch
    expect(page.locator("#train-curves .legendtext", has_text="per step")).to_have_count(1)
    points = page.locator("#train-curves .scatterlayer .trace").filter(
        has=page.locator(".points path")).first.locator(".points path")
    expect(points).to_have_count(2, timeout=30_000)
    expect(page.locator("#train-history")).to_contain_text(run_id)

    store = state.manager().store
    new = [r for r in store.list() if r.id not in before]
    assert [r.id for r in new] == [run_id]  # one history entry, however many ranks trained
    record = store.get(run_id)
    assert record.config["processes"] == 2 and record.result["hardware"]["processes"] == 2
    assert [e["epoch"] for e in store.epochs(run_id)] == [1, 2]
    steps = [s[0] for s in store.steps(run_id)]
    assert steps == sorted(set(steps)) and steps[-1] == ITERATIONS  # every step counted once
