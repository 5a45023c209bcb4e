"""The Experiments tab in a real browser: an experiment queued from the tab on a tiny labelled set shows its
table, figure and the reproducibility card to download; another is cancelled while it runs."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from playwright.sync_api import expect

from test_experiments_generalization import make_planted_set


@pytest.fixture(scope="module")
def tiny_sets():
    from detectlab import config

    root = config.datasets_dir()
    small = make_planted_set(root / "exp-tiny", n=30)
    large = make_planted_set(root / "exp-larger", n=400, seed=1)
    yield small, large
    shutil.rmtree(small, ignore_errors=True)
    shutil.rmtree(large, ignore_errors=True)


def _open(page, folder: str, experiment: str | None = None) -> None:
    page.get_by_role("tab", name="Experiments").click()
    if experiment:
        page.locator("#exp-name input").click()
        page.get_by_role("option", name=experiment).click()
    box = page.locator("#exp-folder textarea, #exp-folder input").first
    box.fill(folder)


def _run(page) -> str:
    """Click Run and return the new run's id: the selection must change from what it showed before the click (the
    page may open on an earlier test's run, which is not this one)."""
    box = page.locator("#exp-selected textarea, #exp-selected input").first
    before = box.input_value()
    page.locator("#exp-run").click()
    expect(box).not_to_have_value(before, timeout=30_000)
    expect(box).not_to_have_value("", timeout=30_000)
    return box.input_value()


def test_cross_generator_matrix_from_the_tab_shows_the_table_and_hands_over_the_card(page, tiny_sets):
    small, _ = tiny_sets
    _open(page, small.name)
    run_id = _run(page)
    status = page.locator("#exp-status")
    expect(status).to_contain_text(f"{run_id} finished", timeout=300_000)
    table = page.locator("#exp-table")
    for cell in ("trained_on", "tested_on", "balanced_accuracy"):
        expect(table).to_contain_text(cell)
    expect(table.locator('[role="grid"]')).to_have_attribute("aria-rowcount", "10")  # header + 3 x 3 generators
    expect(page.locator("#exp-plot .js-plotly-plot")).to_have_count(1, timeout=30_000)
    expect(page.locator("#exp-summary")).not_to_be_empty()
    expect(page.locator("#exp-history")).to_contain_text(run_id)
    link = page.locator("#exp-files a[href$='/cross-generator-card.json']")
    expect(link).to_have_count(1, timeout=30_000)
    for ext in ("html", "csv", "png"):
        expect(page.locator(f"#exp-files a[href$='.{ext}']").first).to_be_attached()
    card = json.loads(page.request.get(link.get_attribute("href")).text())
    assert card["experiment"] == "cross-generator" and card["format"].startswith("detectlab-experiment-card/")
    assert len(card["tables"]["cross_generator"]) == 9 and card["data"]["fingerprint"]


def test_a_running_experiment_is_cancelled_from_the_tab(page, tiny_sets):
    _, large = tiny_sets
    _open(page, large.name)
    run_id = _run(page)
    status = page.locator("#exp-status")
    expect(status).to_contain_text(f"{run_id} running", timeout=120_000)
    page.locator("#exp-cancel").click()
    expect(status).to_contain_text(f"{run_id} cancelled", timeout=30_000)
    expect(status).not_to_contain_text("failed")


def test_a_folder_with_one_generator_is_refused_in_one_line_and_nothing_is_queued(page, tmp_path):
    from detectlab import config
    from detectlab.ui import state

    one = make_planted_set(config.datasets_dir() / "exp-one-gen", gens=("a",), n=8)
    try:
        before = len(state.manager().store.list())
        _open(page, one.name)
        page.locator("#exp-run").click()
        status = page.locator("#exp-status")
        expect(status).to_contain_text("Error", timeout=30_000)
        expect(status).to_contain_text("generator")
        assert "\n" not in status.inner_text().strip()
        assert len(state.manager().store.list()) == before
    finally:
        shutil.rmtree(one, ignore_errors=True)


def test_a_folder_named_in_the_settings_must_lie_inside_the_data_roots(tiny_sets):
    """From the page, the set-distance folders (and the calibration's real-only folder) are confined as the data
    set is: a server path outside the data roots is refused in one line and nothing is queued."""
    from detectlab.ui import experiments_tab, state

    small, _ = tiny_sets
    before = len(state.manager().store.list())
    for settings in ('{"a": "/etc", "b": "/usr/share"}', '{"real_folder": "/root/.ssh"}'):
        name = "set-distance" if '"a"' in settings else "calibration"
        _, message = experiments_tab.launch(name, "", small.name, settings)
        assert message.startswith("**Error:**") and "\n" not in message, message
        assert "data roots" in message or "outside" in message, message
    assert len(state.manager().store.list()) == before


def test_the_embedding_map_shows_a_points_image_on_hover(page, tiny_sets):
    """t-SNE from the tab: hovering a point of the map shows that image (a PNG thumbnail) and its file."""
    small, _ = tiny_sets
    _open(page, small.name, "Embeddings (t-SNE) and separability — [DFwF]")
    expect(page.locator("#exp-settings")).to_contain_text('"perplexity"')  # the picked experiment's settings
    run_id = _run(page)
    expect(page.locator("#exp-status")).to_contain_text(f"{run_id} finished", timeout=300_000)
    expect(page.locator("#exp-figure-pick input")).to_have_value("tsne", timeout=30_000)
    point = page.locator("#exp-plot .scatterlayer path.point").first
    expect(point).to_be_visible(timeout=30_000)
    hover = page.locator("#exp-hover-image")
    expect(hover).to_be_hidden()
    point.scroll_into_view_if_needed()
    box = point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(hover).to_be_visible()
    assert hover.locator("img").get_attribute("src").startswith("data:image/png;base64,")
    expect(hover).to_have_text(re.compile(r"^(real|a|b|c)/s\d{3}\.png$"))
    page.mouse.move(5, 5)  # off the map: the image goes
    expect(hover).to_be_hidden()
