"""Detect tab in headless chromium: a synthetic image scores higher than a real one; bad uploads say so."""

from __future__ import annotations

import re
import time

import pytest

from detectlab.data import discover, split

pytestmark = pytest.mark.browser


def _pick(demo_root, generator):
    test = split(discover(demo_root).samples, seed=0)["test"]
    return next(s.path for s in test if s.generator == generator)


def _score(page, path, previous=""):
    """Upload ``path`` and return (P(fake) or None, verdict text) once the verdict has changed."""
    clear = page.locator("#detect-upload button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
    page.locator("#detect-upload input[type=file]").set_input_files(str(path))
    verdict = page.locator("#detect-verdict")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = verdict.inner_text()
        if text != previous and re.search(r"P\(fake\) = \d\.\d{3}|Error", text):
            m = re.search(r"P\(fake\) = (\d\.\d{3})", text)
            return (float(m.group(1)) if m else None), text
        time.sleep(0.2)
    raise AssertionError(f"verdict did not change after uploading {path.name}: {verdict.inner_text()!r}")


def test_synthetic_scores_higher_than_real_with_heatmap(page, demo_root):
    page.get_by_role("tab", name="Detect").click()
    p_fake, text = _score(page, _pick(demo_root, "pixel-shuffle"))
    assert page.locator("#detect-heatmaps img").count() >= 1
    p_real, _ = _score(page, _pick(demo_root, "real"), previous=text)
    assert p_fake is not None and p_real is not None
    assert p_fake > p_real
    assert page.locator("#detect-heatmaps img").count() >= 1


def test_corrupt_upload_shows_error_and_tab_keeps_working(page, demo_root, tmp_path):
    bad = tmp_path / "corrupt_upload.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    page.get_by_role("tab", name="Detect").click()
    _, text = _score(page, bad)
    assert "Error" in text and "corrupt_upload.png" in text
    p, _ = _score(page, _pick(demo_root, "real"), previous=text)
    assert p is not None
