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
    return re.findall(r"\t(\d\.\d{3})\t\d\.\d{2}\t(?:FAKE|REAL)", text)


def _open_tab(page):
    page.get_by_role("tab", name="Robustness").click()
    page.get_by_role("tab", name="Live sliders").click()


def test_jpeg_slider_release_rescores_without_a_button(page, demo_root):
    from playwright.sync_api import expect

    image = _pick(demo_root, "pixel-shuffle")
    _open_tab(page)
    page.locator("#rob-upload input[type=file]").set_input_files(str(image))
    verdict = page.locator("#rob-live-verdict")
    expect(verdict).to_contain_text(f"{image.name} · chain jpeg 100 ·", timeout=WAIT)
    before = verdict.inner_text()
    first = _pfakes(before)
    assert first, before
    preview = page.locator("#rob-live-gallery img")
    expect(preview.first).to_be_visible()
    # drag the JPEG slider from 100 to its low end and let go: no button is pressed
    track = page.locator("#rob-jpeg input[type=range]")
    box = track.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] - 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.04, y, steps=8)
    page.mouse.up()
    quality = int(float(page.locator("#rob-jpeg input[type=number]").input_value()))
    assert 5 <= quality <= 15
    expect(verdict).to_contain_text(f"{image.name} · chain jpeg {quality} ·", timeout=WAIT)
    after = verdict.inner_text()
    psnr = [float(v) for v in re.findall(r"PSNR to the input ([\d.]+) dB", before + after)]
    assert psnr[1] < psnr[0] - 5, (before, after)   # the preview really is compressed harder
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
    expect(verdict).to_contain_text(f"{good.name} · chain jpeg 100 ·", timeout=WAIT)


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
    clean, _ = client.predict(image=handle_file(str(big)), api_name="/degrade_score")   # defaults: the pair
    out, degraded = client.predict(image=handle_file(str(big)), detectors="cnn-resnet18", blur_sigma=2.0,
                                   jpeg_quality=20, order="blur, jpeg", api_name="/degrade_score")
    assert out["chain"] == "blur 2 → jpeg 20" and clean["chain"] == "jpeg 100"
    assert out["scored_size"] == 128 and out["source_size"] == [512, 512]
    assert out["psnr_db"] < clean["psnr_db"]
    (d,) = out["detectors"]
    assert d["name"] == "cnn-resnet18" and 0 <= d["p_fake"] <= 1 and d["threshold"] == 0.5
    assert clean["detectors"][0]["name"] == "cnn-resnet18"
    assert d["p_fake"] != clean["detectors"][0]["p_fake"]
    assert Image.open(degraded).size == (128, 128)
    for kwargs, named in [({"jpeg_quality": 3}, "jpeg_quality must be a number in [5, 100], got 3"),
                          ({"blur_sigma": 99}, "blur_sigma must be a number in [0, 20], got 99"),
                          ({"order": "blur, sharpen"}, "unknown degradation 'sharpen'"),
                          ({"detectors": "no-such-detector"}, "no-such-detector")]:
        with pytest.raises(Exception, match=re.escape(named)):
            client.predict(image=handle_file(str(big)), api_name="/degrade_score", **kwargs)
    again, _ = client.predict(image=handle_file(str(big)), detectors="cnn-resnet18", jpeg_quality=20,
                              order="jpeg", api_name="/degrade_score")
    assert again["chain"] == "jpeg 20"
