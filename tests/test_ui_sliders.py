"""The live sliders' handlers, called as the page calls them (no browser): what they send, and that it equals
the full re-score. The browser side is in tests/test_app_{detect,attack,robustness}.py; the timing in
bench/bench_sliders.py."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from detectlab.robustness import DEFAULT_ORDER
from detectlab.ui import attack_tab, detect_tab, robustness_tab

CNN = "shipped: cnn-resnet18"
SKIP = {"__type__": "update"}   # gr.skip()


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("sliders") / "photo.jpg"
    yy, xx = np.mgrid[0:477, 0:720] / 720
    img = np.stack([xx, yy, (xx + yy) / 2], -1) * 200 + np.random.default_rng(0).normal(0, 12, (477, 720, 3))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)
    return str(path)


def _untimed(markdown: str) -> str:
    """A verdict without the milliseconds it reports (they differ from call to call)."""
    return re.sub(r"\d+ ms", "", markdown)


def _pixels(items) -> list:
    return [np.asarray(im) for im, _ in items]


def test_opacity_reblends_without_the_model_and_matches_a_full_rescore(photo, monkeypatch):
    md, items, shown = detect_tab.rescore(photo, CNN, "gradcam", 0.5)
    assert "at opacity 0.50" in md and shown.opacity == 0.5
    full_md, full_items, _ = detect_tab.rescore(photo, CNN, "gradcam", 0.3)

    def no_model(*_, **__):
        raise AssertionError("opacity must not load or run a detector")

    monkeypatch.setattr(detect_tab, "load_detector", no_model)
    monkeypatch.setattr(detect_tab, "judge_file", no_model)
    md3, items3, shown3 = detect_tab.reblend(shown, 0.3)
    assert "at opacity 0.30" in md3 and shown3.opacity == 0.3
    assert _untimed(md3) == _untimed(full_md)   # the full re-score's verdict, but for the time it reports
    assert len(items3) == len(full_items) == 3
    assert all(np.array_equal(a, b) for a, b in zip(_pixels(items3), _pixels(full_items)))
    assert [c for _, c in items3] == [c for _, c in full_items]
    # nothing to re-blend: every output skipped, nothing re-sent
    assert detect_tab.reblend(shown3, 0.3) == (SKIP, SKIP, SKIP)
    assert detect_tab.reblend(None, 0.7) == (SKIP, SKIP, SKIP)


def test_opacity_leaves_a_tiles_verdict_alone(photo):
    _, _, shown = detect_tab.rescore(photo, CNN, "gradcam", 0.5, "tiles")
    assert shown.scoring == "tiles"
    assert detect_tab.reblend(shown, 0.2) == (SKIP, SKIP, SKIP)


def test_eps_sends_everything_but_the_unchanged_before_image(photo):
    full = attack_tab.playground(photo, CNN, "fgsm", 0.03)
    eps_only = attack_tab.playground_eps(photo, CNN, "fgsm", 0.03)
    assert len(full) == 5 and len(eps_only) == 4
    assert _untimed(eps_only[0]) == _untimed(full[0])
    assert "ε = 0.030" in eps_only[0]
    for a, b in zip(eps_only[1:3], full[2:4]):
        assert np.array_equal(np.asarray(a["value"]), np.asarray(b["value"])) and a["label"] == b["label"]
    error = attack_tab.playground_eps(photo, "shipped: spectrum-durrall", "fgsm", 0.03)
    assert len(error) == 4 and "do not apply" in error[0] and error[1:] == (None, None, None)


def test_the_live_verdict_comes_first_and_the_chart_from_its_numbers(photo):
    pair = ["shipped: cnn-resnet18", "shipped: cnn-resnet18-aug"]
    md, gallery, scores = robustness_tab.live(photo, pair, list(DEFAULT_ORDER), 2.0, 100, 1024, 1.0, 0.0, 1.0,
                                              False)
    assert "chain **blur 2** ·" in md and len(gallery) == 2
    assert [name for name, _, _ in scores] == ["cnn-resnet18", "cnn-resnet18-aug"]
    for name, p, _ in scores:
        assert f"| {name} | {p:.4f} |" in md
    fig = robustness_tab.bars(scores)
    assert list(fig.data[0].x) == [p for _, p, _ in scores] and list(fig.data[1].x) == [t for _, _, t in scores]
    # an error or no image: the message, and the chart left as it is
    bad, _, none = robustness_tab.live(photo, pair, list(DEFAULT_ORDER), 99.0, 100, 1024, 1.0, 0.0, 1.0, False)
    assert "blur_sigma must be a number in [0, 20], got 99" in bad and none is None
    assert robustness_tab.bars(none) == SKIP
    assert robustness_tab.live(None, pair, list(DEFAULT_ORDER), 2.0, 100, 1024, 1.0, 0.0, 1.0, False)[2] is None
