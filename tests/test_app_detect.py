"""Detect tab in headless chromium: a synthetic image scores higher than a real one; bad uploads say so."""

from __future__ import annotations

import re
import shutil

import pytest
from playwright.sync_api import expect

from detectlab import config
from detectlab.catalog import heldout_record
from detectlab.data import discover, split

pytestmark = pytest.mark.browser


def _pick(demo_root, generator, tmp_path):
    """A test-split image of ``generator``, copied under a name no other upload of the test has."""
    test = split(discover(demo_root).samples, seed=0)["test"]
    src = next(s.path for s in test if s.generator == generator)
    dst = tmp_path / f"{generator}-{src.name}"
    shutil.copy(src, dst)
    return dst


def _score(page, path):
    """Upload ``path``; return (P(fake) or None, verdict text) of the verdict that names this file."""
    clear = page.locator("#detect-upload button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
    page.locator("#detect-upload input[type=file]").set_input_files(str(path))
    verdict = page.locator("#detect-verdict")
    expect(verdict).to_contain_text(path.name, timeout=60_000)  # this request's answer, not the previous one
    text = verdict.inner_text()
    m = re.search(r"P\(fake\) = (\d\.\d{3})", text)
    return (float(m.group(1)) if m else None), text


def test_synthetic_scores_higher_than_real_with_heatmap(page, demo_root, tmp_path):
    page.get_by_role("tab", name="Detect").click()
    p_fake, _ = _score(page, _pick(demo_root, "pixel-shuffle", tmp_path))
    expect(page.locator("#detect-heatmaps img").first).to_be_visible()
    # input, heatmap and colour scale: the captions say which decision the map explains
    expect(page.locator("#detect-heatmaps img")).to_have_count(3)
    expect(page.locator("#detect-heatmaps")).to_contain_text("evidence for 'fake'")
    p_real, _ = _score(page, _pick(demo_root, "real", tmp_path))
    assert p_fake is not None and p_real is not None
    assert p_fake > p_real
    expect(page.locator("#detect-heatmaps img").first).to_be_visible()


def test_corrupt_upload_shows_error_and_tab_keeps_working(page, demo_root, tmp_path):
    bad = tmp_path / "corrupt_upload.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    page.get_by_role("tab", name="Detect").click()
    _, text = _score(page, bad)
    assert "Error" in text
    p, _ = _score(page, _pick(demo_root, "real", tmp_path))
    assert p is not None


def test_changing_any_input_rescores_the_current_image(page, demo_root, tmp_path):
    """Detector, heatmap method and a typed opacity each re-score the image on screen, without a button."""
    page.get_by_role("tab", name="Detect").click()
    img = _pick(demo_root, "transposed-conv", tmp_path)
    _, text = _score(page, img)
    assert "detector shipped: cnn-resnet18" in text and "gradcam on" in text
    verdict = page.locator("#detect-verdict")
    page.locator("#detect-detector input").click()
    page.get_by_role("option", name="shipped: spectrum-durrall").click()
    expect(verdict).to_contain_text("detector shipped: spectrum-durrall", timeout=60_000)
    expect(verdict).to_contain_text(img.name)  # the same image, re-scored by the new detector
    assert "no heatmap" in verdict.inner_text()
    # beside the verdict: how often this detector calls unseen real photos fake, warned when off target
    record = heldout_record(config.CHECKPOINT_DIR / "spectrum-durrall.safetensors")
    assert record is not None
    expect(verdict).to_contain_text(f"{100 * record.photo_rate('resize'):.0f} % fake (resized, as now)")
    if record.misses("resize"):
        expect(verdict).to_contain_text("Weak evidence on real photos")
    page.locator("#detect-detector input").click()
    page.get_by_role("option", name="shipped: cnn-resnet18", exact=True).click()
    expect(verdict).to_contain_text("detector shipped: cnn-resnet18", timeout=60_000)
    page.get_by_role("radio", name="gradcam++").check()
    expect(verdict).to_contain_text("heatmap: gradcam++ on", timeout=60_000)
    box = page.locator("#detect-opacity input[type=number]")
    box.fill("0.3")
    box.press("Enter")
    expect(verdict).to_contain_text("at opacity 0.30", timeout=60_000)
    expect(verdict).to_contain_text(img.name)
    expect(page.locator("#detect-heatmaps img").first).to_be_visible()

    # scoring at native resolution, without a button; the verdict says which scoring ran
    big = tmp_path / "large-photo.png"
    from PIL import Image

    Image.open(img).resize((640, 384)).save(big)
    _score(page, big)
    page.locator("#detect-scoring").get_by_text("native-resolution tiles").click()
    expect(verdict).to_contain_text("scored at native resolution: 15 tiles of 128 px over 640×384", timeout=60_000)
    expect(verdict).to_contain_text(big.name)
    expect(page.locator("#detect-heatmaps")).to_contain_text("P(fake) per tile")


def test_batch_on_the_demo_defaults_to_its_test_split_and_says_so(page, demo_root):
    """The demo folder defaults to its test split; the table, metrics and status name the split and its size."""
    from detectlab.data import discover, split

    n_all = len(discover(demo_root).samples)
    n_test = len(split(discover(demo_root).samples, seed=0)["test"])
    page.get_by_role("tab", name="Detect").click()
    page.get_by_role("tab", name="Batch").click()
    page.locator("#detect-batch-folder textarea, #detect-batch-folder input").first.fill("demo")
    expect(page.locator("#detect-batch-split input[value=test]")).to_be_checked()
    page.locator("#detect-batch-run").click()
    status = page.locator("#detect-batch-status")
    expect(status).to_contain_text(f"test split (seed 0): {n_test} of {n_all} images", timeout=120_000)
    groups = page.locator("#detect-batch-groups")
    expect(groups).to_contain_text(f"Per generator — test split, {n_test} of {n_all} images")
    for g in ("real", "pixel-shuffle", "resize-conv", "transposed-conv"):
        expect(groups).to_contain_text(g)
    expect(page.locator("#detect-batch-metrics")).to_contain_text(f"Metrics on the test split: {n_test} of {n_all}")
    expect(page.locator("#detect-batch-json a").first).to_have_attribute("href", re.compile(r"detectlab_metrics\.json$"))
    expect(page.locator("#detect-batch-csv a").first).to_have_attribute("href",
                                                                       re.compile(r"detectlab_predictions\.csv$"))
