"""Attack tab in headless chromium (the eps slider re-attacks on release) and the /attack API through gradio_client."""

from __future__ import annotations

import math
import re
import shutil

import pytest
from playwright.sync_api import expect

from detectlab.data import discover, load_tensor, split

pytestmark = pytest.mark.browser


def _pick(demo_root, generator, tmp_path, tag):
    """A test-split image of ``generator`` that cnn-resnet18 calls fake, copied under a name of this test."""
    import torch

    from detectlab.catalog import load_detector

    det = load_detector("cnn-resnet18").detector
    test = split(discover(demo_root).samples, seed=0)["test"]
    with torch.no_grad():
        src = next(s.path for s in test if s.generator == generator
                   and torch.sigmoid(det(load_tensor(s.path, 128)[None]))[0] > 0.9)
    dst = tmp_path / f"{tag}-{generator}-{src.name}"
    shutil.copy(src, dst)
    return dst


def _numbers(text: str) -> tuple[float, float]:
    m = re.search(r"P\(fake\) (\d\.\d{3}) → (\d\.\d{3})", text)
    assert m, text
    return float(m.group(1)), float(m.group(2))


def _drag_eps(page, fraction: float) -> float:
    """Drag the eps slider's thumb to ``fraction`` of its track with the mouse; returns the value it shows."""
    track = page.locator("#attack-eps input[type=range]")
    box = track.bounding_box()
    y = box["y"] + box["height"] / 2
    value = float(track.input_value())
    page.mouse.move(box["x"] + box["width"] * value / 0.1, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * fraction, y, steps=8)
    page.mouse.up()  # the release: no button is pressed
    return float(track.input_value())


def test_moving_eps_lowers_p_fake_without_a_button(page, demo_root, tmp_path):
    # PGD: single-step FGSM barely moves the shipped cnn-resnet18 (its sign noise adds the kind of
    # high-frequency energy the sharper demo generators leave; README "Attacks")
    page.get_by_role("tab", name="Attack", exact=True).click()
    page.locator("#attack-method label", has_text="pgd").click()
    img = _pick(demo_root, "pixel-shuffle", tmp_path, "slider")
    page.locator("#attack-upload input[type=file]").set_input_files(str(img))
    verdict = page.locator("#attack-verdict")
    expect(verdict).to_contain_text(img.name, timeout=120_000)
    expect(verdict).to_contain_text("ε = 0.010", timeout=120_000)  # this request's answer (the default eps)
    before, after_small = _numbers(verdict.inner_text())
    eps = _drag_eps(page, 0.6)
    assert eps >= 0.04, eps
    expect(verdict).to_contain_text(f"ε = {eps:.3f}", timeout=120_000)
    p0, after = _numbers(verdict.inner_text())
    assert p0 == before and before > 0.5             # the clean image is called fake
    assert after < before - 0.3                      # the attack pushed P(fake) down
    assert "Saved and read back" in verdict.inner_text()
    expect(page.locator("#attack-adversarial img")).to_be_visible()
    expect(page.locator("#attack-residual")).to_contain_text(re.compile(r"black/white = ∓0\.0\d{3}"))
    expect(page.locator("#attack-download a").first).to_have_attribute(
        "href", re.compile(re.escape(f"{img.stem}_pgd_eps{eps:.3f}.png") + "$"))


def test_spectrum_detector_says_gradient_attacks_do_not_apply(page, demo_root, tmp_path):
    page.get_by_role("tab", name="Attack", exact=True).click()
    page.locator("#attack-detector input").click()
    page.get_by_role("option", name="shipped: spectrum-durrall").click()
    img = _pick(demo_root, "resize-conv", tmp_path, "spectrum")
    page.locator("#attack-upload input[type=file]").set_input_files(str(img))
    verdict = page.locator("#attack-verdict")
    expect(verdict).to_contain_text("do not apply to 'spectrum-durrall'", timeout=120_000)
    # the tab keeps working: back to the CNN, the same image is attacked
    page.locator("#attack-detector input").click()
    page.get_by_role("option", name="shipped: cnn-resnet18", exact=True).click()
    expect(verdict).to_contain_text(img.name, timeout=120_000)
    expect(verdict).to_contain_text("ε = 0.010")


def test_attack_api(app_url, demo_root, tmp_path):
    from gradio_client import Client, handle_file

    img = _pick(demo_root, "transposed-conv", tmp_path, "api")
    client = Client(app_url, verbose=False)
    out, png = client.predict(handle_file(str(img)), "cnn-resnet18", "fgsm", 0.02, api_name="/attack")
    assert out["eps"] == 0.02 and out["method"] == "fgsm"
    assert out["linf"] == pytest.approx(0.02, abs=1e-4)
    # PSNR = 10 log10(n / L2^2) over n = 3 x 128 x 128 values; no pixel moves more than eps (clipping only shrinks)
    assert out["psnr"] == pytest.approx(10 * math.log10(3 * 128 * 128 / out["l2"] ** 2), abs=1e-3)
    assert out["psnr"] >= -20 * math.log10(0.02) - 1e-3
    adv = load_tensor(png)
    assert adv.shape == (3, 128, 128)
    assert (adv - load_tensor(img, 128)).abs().max() <= 0.02 + 1 / 255   # the PNG is the 8-bit adversarial image
    out_pgd, _ = client.predict(handle_file(str(img)), "cnn-resnet18", "pgd", 0.02, api_name="/attack")
    assert out_pgd["p_fake_after"] < out_pgd["p_fake_before"] - 0.1
    assert out_pgd["p_fake_after"] <= out["p_fake_after"] + 1e-3
    with pytest.raises(Exception, match="eps must be a number in \\[0, 1\\]"):
        client.predict(handle_file(str(img)), "cnn-resnet18", "fgsm", 1.5, api_name="/attack")
    with pytest.raises(Exception, match="do not apply to 'spectrum-durrall'"):
        client.predict(handle_file(str(img)), "spectrum-durrall", "fgsm", 0.02, api_name="/attack")
