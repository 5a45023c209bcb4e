"""Localize tab in headless chromium, and the /localize API through gradio_client."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo_pair(demo_root, tmp_path_factory):
    """A test-split manipulated demo image and its mask, copied under a name unique to this module."""
    from detectlab import config
    from detectlab.localize.dataset import split_examples

    _, image, mask = split_examples(config.DEMO_INPAINT_DIR)[25]
    folder = tmp_path_factory.mktemp("localize-upload")
    img = folder / f"upload-{image.name}"
    msk = folder / f"mask-{image.name}"
    shutil.copy(image, img)
    shutil.copy(mask, msk)
    return img, msk


def _open(page):
    page.get_by_role("tab", name="Localize").click()
    expect(page.locator("#localize-localizer")).to_be_visible()


def test_upload_shows_overlay_tp_fp_fn_and_heatmap_then_slider_redraws(page, demo_pair):
    img, msk = demo_pair
    _open(page)
    page.locator("#localize-mask input[type=file]").set_input_files(str(msk))
    summary = page.locator("#localize-summary")
    page.locator("#localize-image input[type=file]").set_input_files(str(img))
    expect(summary).to_contain_text(img.name, timeout=90_000)     # this upload's answer
    expect(summary).to_contain_text("vs ground truth", timeout=30_000)
    expect(summary).to_contain_text("pixel precision")
    expect(page.locator("#localize-overlay img")).to_be_visible()
    expect(page.locator("#localize-tpfpfn img")).to_be_visible()
    expect(page.locator("#localize-heatmap img")).to_be_visible()
    assert re.search(r"true mask IoU \d\.\d{3}", summary.inner_text())

    # release the slider near its right end: the summary names the new threshold (no model run)
    track = page.locator("#localize-conf input[type=range]")
    box = track.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2)
    value = float(page.locator("#localize-conf input[type=number]").input_value())
    assert value > 0.6
    expect(summary).to_contain_text(f"confidence ≥ {value:.2f}", timeout=30_000)


def test_bad_mask_says_so_and_the_tab_keeps_working(page, tmp_path):
    _open(page)
    summary = page.locator("#localize-summary")
    page.locator("#localize-demo input").click()
    option = page.locator("#localize-demo [role=option], ul.options li").nth(3)
    stem = option.inner_text().split(" ")[0]
    option.click()
    expect(summary).to_contain_text(f"{stem}.png", timeout=60_000)
    expect(summary).to_contain_text("vs ground truth")           # the demo's own mask
    soft = tmp_path / "soft_mask.png"
    Image.fromarray(np.tile(np.linspace(0, 255, 128).astype(np.uint8), (128, 1))).save(soft)
    page.locator("#localize-mask input[type=file]").set_input_files(str(soft))
    expect(summary).to_contain_text("soft_mask.png: the mask is not binary", timeout=60_000)
    page.locator("#localize-mask button[aria-label='Clear']").first.click()
    page.locator("#localize-run").click()
    expect(summary).to_contain_text(f"{stem}.png", timeout=60_000)
    expect(summary).to_contain_text("vs ground truth")
    expect(page.locator("#localize-tpfpfn img")).to_be_visible()


def test_localize_api(app_url, demo_pair):
    from gradio_client import Client, handle_file

    img, msk = demo_pair
    client = Client(app_url, verbose=False)
    info, overlay, tpfpfn = client.predict(handle_file(str(img)), handle_file(str(msk)), "", "shipped: cnn-resnet18",
                                           0.25, api_name="/localize")
    assert info["file"] == img.name
    assert 0.0 <= info["pixel"]["dice"] <= 1.0 and info["pixel"]["tp"] + info["pixel"]["fn"] > 0
    assert all(0.25 <= r["confidence"] <= 1.0 for r in info["regions"])
    assert 0.0 <= info["detector"]["heatmap_iou"] <= 1.0
    with Image.open(overlay) as im:
        assert im.width >= 128
    assert tpfpfn is not None


def test_uploaded_pt_needs_the_trust_tick_and_is_checked(tmp_path):
    from detectlab.errors import DetectLabError
    from detectlab.ui import localize_tab

    pt = tmp_path / "uploaded.pt"
    pt.write_bytes(b"not a model")
    with pytest.raises(DetectLabError, match="tick 'I trust this .pt file'"):
        localize_tab._load_localizer("", str(pt), False)
    with pytest.raises(DetectLabError, match="uploaded.pt: cannot be loaded"):
        localize_tab._load_localizer("", str(pt), True)
    with pytest.raises(DetectLabError, match="not a file path on the server"):
        localize_tab._load_localizer("/etc/passwd", None, False)
    summary, *_ = localize_tab.run_localize("x.png", None, "", "(none)", 0.25, str(pt), False)
    assert summary.startswith("**Error:**") and "trust" in summary


def test_unmanipulated_photo_warns_with_the_measured_area_and_clears_the_demo_pick(page, tmp_path):
    """A held-out camera photo (no manipulation) through the U-Net: the warning names the share it marks and
    the false-positive areas measured on unmanipulated photos; the demo pick made before leaves the screen."""
    from detectlab import config
    from detectlab.localize import localize_image
    from detectlab.localize.localizer import load_localizer, shipped_localizers
    from detectlab.localize.reliability import measured_areas

    photo = tmp_path / "unmanipulated-photo.jpg"
    shutil.copy(config.ASSETS / "heldout" / "full" / "p0005.jpg", photo)
    area = localize_image(load_localizer(shipped_localizers()["unet-small"]), photo, conf=0.25).predicted_area()
    assert area > 0.05  # this photo is one the U-Net marks
    held = measured_areas("unet-small")["heldout-full"]

    _open(page)
    page.locator("#localize-localizer input").click()
    page.locator("#localize-localizer [role=option], ul.options li").filter(has_text="shipped: unet-small").click()
    summary, warning = page.locator("#localize-summary"), page.locator("#localize-warning")
    page.locator("#localize-demo input").click()
    option = page.locator("#localize-demo [role=option], ul.options li").nth(2)
    stem = option.inner_text().split(" ")[0]
    option.click()
    expect(summary).to_contain_text(f"{stem}.png", timeout=60_000)
    expect(summary).to_contain_text("unet-small")
    expect(warning).to_be_hidden()  # a demo crop the size of its training images, a region of usual size

    page.locator("#localize-image input[type=file]").set_input_files(str(photo))
    expect(summary).to_contain_text(photo.name, timeout=90_000)
    expect(page.locator("#localize-demo input")).to_have_value("")
    expect(summary).not_to_contain_text(stem)
    expect(warning).to_be_visible()
    text = warning.inner_text()
    assert f"unet-small marks {100 * area:.0f} % of the image as manipulated" in text
    assert "unlike its training images (128 px crops of the demo)" in text
    assert (f"{100 * held['mean']:.0f} % on average (max {100 * held['max']:.0f} %) of {held['images']} "
            "held-out camera photos") in text
    assert "treat the regions as unreliable" in text


def test_localize_api_carries_the_same_warning(tmp_path):
    from detectlab import config
    from detectlab.ui import localize_tab

    photo = tmp_path / "photo.jpg"
    shutil.copy(config.ASSETS / "heldout" / "full" / "p0005.jpg", photo)
    info, overlay, tpfpfn = localize_tab.api_localize(str(photo), "", "unet-small", "", 0.25)
    assert info["localizer"] == "unet-small" and tpfpfn is None
    assert info["warning"].startswith(f"unet-small marks {100 * info['predicted_area']:.0f} % of the image")
    from detectlab.localize.reliability import measured_areas

    assert f"of {measured_areas('unet-small')['heldout-full']['images']} held-out camera photos" in info["warning"]
