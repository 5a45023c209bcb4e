"""Fingerprints tab in headless chromium: the side-by-side grid for the demo generators."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_side_by_side_grid_for_demo_generators(page):
    page.get_by_role("tab", name="Fingerprints").click()
    page.locator("#fp-run").click()
    grid = page.locator("#fp-grid")
    for g in ("transposed-conv", "resize-conv", "pixel-shuffle"):
        expect(grid.get_by_text(f"FP(real, {g})")).to_be_visible(timeout=120_000)
    assert grid.locator(".heatmaplayer .hm, .heatmaplayer image").count() >= 3
    expect(page.locator("#fp-status")).to_contain_text("real images")
