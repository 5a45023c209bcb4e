"""Robustness tab in headless chromium and its /degrade_score API through gradio_client."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from detectlab import config
from detectlab.data import discover, split

pytestmark = pytest.mark.browser

WAIT = 120_000  # ms; the first request loads the detectors


def _pick(demo_root, generator):
    test = split(discover(demo_root).samples, seed=0)["test"]
    return next(s.path for s in test if s.generator == generator)


def _pfakes(text: str) -> list[str]:
    return re.findall(r"\t(\d\.\d{4})\t\d\.\d{2}\t(?:FAKE|REAL)", text)


def _rows(text: str) -> dict[str, float]:
    """detector -> P(fake) from the live verdict's table."""
    return {m[0]: float(m[1]) for m in re.findall(r"^\s*(\S+)\t(\d\.\d{4})\t\d\.\d{2}\t(?:FAKE|REAL)", text, re.M)}


def _drag(page, elem_id: str, fraction: float) -> float:
    """Drag a slider's track from its right end to ``fraction`` of it and let go; the value it landed on."""
    track = page.locator(f"#{elem_id} input[type=range]")
    track.scroll_into_view_if_needed()
    box = track.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] - 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * fraction, y, steps=8)
    page.mouse.up()
    return float(page.locator(f"#{elem_id} input[type=number]").input_value())


def _open_tab(page):
    page.get_by_role("tab", name="Robustness").click()
    page.get_by_role("tab", name="Live sliders").click()


def test_jpeg_slider_release_rescores_without_a_button(page, demo_root):
    from playwright.sync_api import expect

    image = _pick(demo_root, "pixel-shuffle")
    _open_tab(page)
    page.locator("#rob-upload input[type=file]").set_input_files(str(image))
    verdict = page.locator("#rob-live-verdict")
    expect(verdict).to_contain_text(f"{image.name} · chain none ·", timeout=WAIT)
    before = verdict.inner_text()
    first = _pfakes(before)
    assert first, before
    preview = page.locator("#rob-live-gallery img")
    expect(preview.first).to_be_visible()
    # drag the JPEG slider from 100 (off) to its low end and let go: no button is pressed
    quality = int(_drag(page, "rob-jpeg", 0.04))
    assert 5 <= quality <= 15
    expect(verdict).to_contain_text(f"{image.name} · chain jpeg {quality} ·", timeout=WAIT)
    after = verdict.inner_text()
    assert "PSNR to the input ∞ (unchanged)" in before, before   # at rest: nothing applied
    psnr = [float(v) for v in re.findall(r"PSNR to the input ([\d.]+) dB", after)]
    assert psnr and psnr[0] < 40, after   # the preview really is compressed
    assert _pfakes(after) != first, (before, after)
    expect(page.locator("#rob-live-bars .js-plotly-plot")).to_have_count(1, timeout=WAIT)


def test_bad_upload_says_so_and_the_tab_keeps_working(page, demo_root, tmp_path):
    from playwright.sync_api import expect

    bad = tmp_path / "broken_robust.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    _open_tab(page)
    verdict = page.locator("#rob-live-verdict")
    page.locator("#rob-upload input[type=file]").set_input_files(str(bad))
    expect(verdict).to_contain_text("broken_robust.png", timeout=WAIT)
    expect(verdict).to_contain_text("Error")
    page.locator("#rob-upload button[aria-label='Clear']").first.click()
    good = _pick(demo_root, "real")
    page.locator("#rob-upload input[type=file]").set_input_files(str(good))
    expect(verdict).to_contain_text(f"{good.name} · chain none ·", timeout=WAIT)


def _tiny_labelled_set() -> str:
    """Six smooth 'real' and six noisy 'fake' images inside the data roots."""
    root = config.datasets_dir() / "robust-tiny"
    rng = np.random.default_rng(0)
    for folder, noise in (("real", 0.0), ("noisegen", 0.25)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for k in range(6):
            yy, xx = np.mgrid[0:48, 0:48] / 48
            img = np.stack([xx, yy, (xx + yy) / 2], -1) * 0.5 + 0.25 + rng.normal(0, noise, (48, 48, 3))
            Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(root / folder / f"i{k}.png")
    return str(root)


def test_sweep_draws_curves_with_table_and_downloads(page):
    from playwright.sync_api import expect

    folder = _tiny_labelled_set()
    page.get_by_role("tab", name="Robustness").click()
    page.get_by_role("tab", name="Sweep").click()
    page.locator("#rob-folder textarea, #rob-folder input").first.fill(folder)
    page.locator("#rob-split").get_by_label("all", exact=True).check()
    levels = page.locator("#rob-levels textarea, #rob-levels input").first
    levels.fill("90,ninety")
    page.locator("#rob-sweep-run").click()
    status = page.locator("#rob-sweep-status")
    expect(status).to_contain_text("'ninety' is not a number", timeout=WAIT)
    levels.fill("95,25,6")
    page.locator("#rob-sweep-run").click()
    expect(status).to_contain_text("jpeg quality on 12 images of robust-tiny (all split)", timeout=WAIT)
    expect(page.locator("#rob-sweep-plot .js-plotly-plot")).to_have_count(1, timeout=WAIT)  # plotly.js loads lazily
    table = page.locator("#rob-sweep-table")
    for cell in ("cnn-resnet18", "95", "25", "6"):
        expect(table).to_contain_text(cell, timeout=WAIT)
    for ext in ("csv", "png", "html"):
        expect(page.locator(f"#rob-sweep-files a[href$='/sweep_jpeg.{ext}']")).to_have_count(1, timeout=WAIT)


def test_degrade_score_api(app_url, demo_root, tmp_path):
    from gradio_client import Client, handle_file

    big = tmp_path / "photo512.jpg"
    Image.open(_pick(demo_root, "transposed-conv")).convert("RGB").resize((512, 512)).save(big, quality=92)
    client = Client(app_url, verbose=False)
    clean, _ = client.predict(image=handle_file(str(big)), api_name="/degrade_score")   # defaults: at rest
    out, degraded = client.predict(image=handle_file(str(big)), detector="cnn-resnet18", blur_sigma=2.0,
                                   jpeg_quality=20, order="blur, jpeg", api_name="/degrade_score")
    assert out["chain"] == "blur 2 → jpeg 20" and clean["chain"] == "none"
    assert out["scored_size"] == 128 and out["source_size"] == [512, 512]
    assert clean["psnr_db"] is None and out["psnr_db"] < 40   # None: unchanged (infinite PSNR)
    (d,) = out["detectors"]
    assert d["name"] == "cnn-resnet18" and 0 <= d["p_fake"] <= 1 and d["threshold"] == 0.5
    assert clean["detectors"][0]["name"] == "cnn-resnet18"
    assert d["p_fake"] != clean["detectors"][0]["p_fake"]
    assert Image.open(degraded).size == (128, 128)
    # at rest the API scores what /detect scores: the same P(fake) for the same image and detector
    from detectlab import catalog
    from detectlab.detect.analyze import analyze_file

    loaded = catalog.load_detector("cnn-resnet18")
    exact = analyze_file(loaded.detector, str(big), loaded.threshold).p_fake
    assert abs(clean["detectors"][0]["p_fake"] - exact) <= 1e-4, (clean, exact)
    # a step off its identity that the order leaves out still applies, after the listed ones
    moved, small = client.predict(image=handle_file(str(big)), detector="cnn-resnet18", blur_sigma=2.0,
                                  resize_scale=0.5, order="blur", api_name="/degrade_score")
    assert moved["chain"] == "blur 2 → resize 0.5" and moved["appended_steps"] == ["resize"]
    assert Image.open(small).size == (64, 64)
    for kwargs, named in [({"jpeg_quality": 3}, "jpeg_quality must be a number in [5, 100], got 3"),
                          ({"blur_sigma": 99}, "blur_sigma must be a number in [0, 20], got 99"),
                          ({"order": "blur, sharpen"}, "unknown degradation 'sharpen'"),
                          ({"detector": "no-such-detector"}, "no-such-detector")]:
        with pytest.raises(Exception, match=re.escape(named)):
            client.predict(image=handle_file(str(big)), api_name="/degrade_score", **kwargs)
    again, _ = client.predict(image=handle_file(str(big)), detector="cnn-resnet18", jpeg_quality=20,
                              order="jpeg", api_name="/degrade_score")
    assert again["chain"] == "jpeg 20"


def test_at_rest_the_live_score_is_detects_and_every_moved_slider_applies(page, demo_root):
    """Sliders untouched: no step applies and P(fake) is Detect's for the same image and detector (1e-4).
    The resize-only slider, once ignored unless it was added to the chain, now always applies."""
    from playwright.sync_api import expect

    from detectlab import catalog
    from detectlab.detect.analyze import analyze_file

    image = _pick(demo_root, "pixel-shuffle")   # a demo fake
    # Detect, default detector, resize scoring
    page.get_by_role("tab", name="Detect").click()
    page.locator("#detect-upload input[type=file]").set_input_files(str(image))
    detect_verdict = page.locator("#detect-verdict")
    expect(detect_verdict).to_contain_text(f"{image.name}", timeout=WAIT)
    expect(detect_verdict).to_contain_text("P(fake) =", timeout=WAIT)
    label = page.locator("#detect-detector input").input_value()
    detect_p = float(re.search(r"P\(fake\) = (\d\.\d{3})", detect_verdict.inner_text())[1])
    name = catalog.shipped_name(label)
    loaded = catalog.load_detector(label)
    exact = analyze_file(loaded.detector, str(image), loaded.threshold, name=image.name).p_fake   # what Detect calls

    _open_tab(page)
    page.locator("#rob-upload input[type=file]").set_input_files(str(image))
    verdict = page.locator("#rob-live-verdict")
    expect(verdict).to_contain_text(f"{image.name} · chain none ·", timeout=WAIT)
    expect(verdict).to_contain_text("Every slider is at rest: nothing is applied")
    rows = _rows(verdict.inner_text())
    assert name in rows, (name, rows)
    live_p = rows[name]
    print(f"{image.name} {name}: Detect {detect_p:.3f} (package {exact:.6f}), Robustness at rest {live_p:.4f}")
    assert abs(live_p - exact) <= 1e-4, (live_p, exact)
    assert abs(live_p - detect_p) <= 5e-4 + 1e-9, (live_p, detect_p)   # Detect shows three decimals
    assert exact > 0.5 and live_p > 0.5   # Detect's FAKE stays FAKE at rest

    # the resize-only slider, left out of the chain order: moved, it applies (last) and the verdict says so
    page.locator("#rob-order .token").filter(has_text=re.compile(r"^\s*resize\s*$")).locator(".token-remove").click()
    expect(page.locator("#rob-order .token")).to_have_count(5)
    scale = _drag(page, "rob-resize", 0.5)
    assert 0.3 <= scale <= 0.7, scale
    expect(verdict).to_contain_text(f"· chain resize {scale:g} ·", timeout=WAIT)
    expect(verdict).to_contain_text("resize is not in the chain order, so it runs after the listed steps")
    after = verdict.inner_text()
    assert re.search(r"PSNR to the input [\d.]+ dB", after), after
    degraded = page.locator("#rob-live-gallery img").nth(1)
    expect(degraded).to_be_visible(timeout=WAIT)
    page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=degraded.element_handle())
    width = degraded.evaluate("el => el.naturalWidth")
    assert width == round(128 * scale), (width, scale)   # the detector really meets the smaller image
