"""Attack tab in headless chromium (the eps slider re-attacks on release; resize and tiles scoring on a large
photo; a set's per-class findings and transfer matrix) and the /attack API through gradio_client."""

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
    assert "Does the attack survive?" in verdict.inner_text()
    expect(page.locator("#attack-adversarial img")).to_be_visible()
    expect(page.locator("#attack-residual")).to_contain_text(re.compile(r"black = 0, white = 0\.0\d{3}"))
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

    def attack(image, detector="cnn-resnet18", method="fgsm", eps=0.02, **kw):
        return client.predict(image=handle_file(str(image)), detector=detector, method=method, eps=eps,
                              api_name="/attack", **kw)

    out, png = attack(img)
    assert out["eps"] == 0.02 and out["method"] == "fgsm" and out["scoring"] == "resize"
    assert out["linf"] == pytest.approx(0.02, abs=1e-4)
    # PSNR = 10 log10(n / L2^2) over n = 3 x 128 x 128 values; no pixel moves more than eps (clipping only shrinks)
    assert out["psnr"] == pytest.approx(10 * math.log10(3 * 128 * 128 / out["l2"] ** 2), abs=1e-3)
    assert out["psnr"] >= -20 * math.log10(0.02) - 1e-3
    adv = load_tensor(png)
    assert adv.shape == (3, 128, 128) and (out["width"], out["height"]) == (128, 128)
    assert (adv - load_tensor(img, 128)).abs().max() <= 0.02 + 1 / 255   # the PNG is the 8-bit adversarial image
    # each survival number comes with its clean control
    assert set(out["survival"]) == {"png", "jpeg90", "blur1"}
    assert out["survival"]["jpeg90"]["p_fake_attacked"] == out["p_fake_jpeg90"]
    assert out["survival"]["png"]["p_fake_clean"] == pytest.approx(out["p_fake_before"], abs=1e-6)
    out_pgd, _ = attack(img, method="pgd")
    assert out_pgd["p_fake_after"] < out_pgd["p_fake_before"] - 0.1
    assert out_pgd["p_fake_after"] <= out["p_fake_after"] + 1e-3
    # tiles: the same path as Detect's tiles scoring, the adversarial image at the upload's size
    wide = _wide_photo(demo_root, tmp_path)
    out_tiles, png_tiles = attack(wide, eps=0.01, scoring="tiles")
    assert (out_tiles["scoring"], out_tiles["tiles"], out_tiles["width"], out_tiles["height"]) == ("tiles", 24, 720, 477)
    assert load_tensor(png_tiles).shape == (3, 477, 720)
    with pytest.raises(Exception, match="eps must be a number in \\[0, 1\\]"):
        attack(img, eps=1.5)
    with pytest.raises(Exception, match="do not apply to 'spectrum-durrall'"):
        attack(img, detector="spectrum-durrall")


#: each survival line of the verdict: the step, the clean image's number (the control), the attacked one's
SURVIVAL_LINE = re.compile(r"^(saved as 8-bit PNG|JPEG 90|Gaussian blur σ 1 px): clean (\d\.\d{3}) → attacked "
                           r"(\d\.\d{3}) — (.+)$", re.M)


def _wide_photo(demo_root, tmp_path):
    """A 720×477 photo made from a demo fake by repeating it at its own resolution (no resampling: the
    generator's trace stays what the detector knows), so the tiles path calls it fake."""
    import numpy as np
    from PIL import Image

    src = sorted((demo_root / "pixel-shuffle").glob("*.png"))[0]
    tile = np.asarray(Image.open(src).convert("RGB"))
    path = tmp_path / "board-720x477.png"
    Image.fromarray(np.ascontiguousarray(np.tile(tile, (4, 6, 1))[:477, :720])).save(path)
    return path


def _download(page, tmp_path, name):
    """The file the download link points at, fetched as the browser would."""
    href = page.locator("#attack-download a").first.get_attribute("href")
    out = tmp_path / name
    out.write_bytes(page.request.get(href).body())
    return out


def _survival(text: str) -> dict[str, tuple[float, float, str]]:
    return {m.group(1): (float(m.group(2)), float(m.group(3)), m.group(4)) for m in SURVIVAL_LINE.finditer(text)}


def test_large_photo_is_attacked_where_the_detector_looks(page, demo_root, tmp_path):
    import io

    from PIL import Image

    from detectlab.catalog import load_detector
    from detectlab.detect.tiling import score_file_tiled, score_tiled

    det = load_detector("cnn-resnet18")
    img = _wide_photo(demo_root, tmp_path)
    page.get_by_role("tab", name="Attack", exact=True).click(timeout=240_000)
    page.locator("#attack-scoring label", has_text="native-resolution tiles").click()
    page.locator("#attack-upload input[type=file]").set_input_files(str(img))
    verdict = page.locator("#attack-verdict")
    expect(verdict).to_contain_text(f"{img.name} · FGSM ε = 0.010 · tiles", timeout=240_000)
    text = verdict.inner_text()
    assert "24 tiles of 128 px over the full 720×477 image" in text
    # before, after and the amplified residual, side by side, the gain stated
    for box in ("#attack-before", "#attack-adversarial", "#attack-residual"):
        expect(page.locator(f"{box} img")).to_be_visible()
    expect(page.locator("#attack-before")).to_contain_text("before: what the detector scores (720×477)")
    expect(page.locator("#attack-residual")).to_contain_text(re.compile(r"\|after − before\| ×100: black = 0, "
                                                                        r"white = 0\.0100"))
    # the download has the upload's size, and Detect's tiles path reads it back as the PNG number says
    adv = _download(page, tmp_path, "adv-tiles.png")
    assert Image.open(adv).size == (720, 477)
    checks = _survival(text)
    assert set(checks) == {"saved as 8-bit PNG", "JPEG 90", "Gaussian blur σ 1 px"}, text
    assert checks["saved as 8-bit PNG"][1] == pytest.approx(score_file_tiled(det.detector, adv).p_fake, abs=1e-3)
    # each clean control is Detect's tiles score of the clean photo after the same step
    p_clean = score_file_tiled(det.detector, img).p_fake
    assert p_clean > 0.5 and f"P(fake) {p_clean:.3f} →" in text
    assert checks["saved as 8-bit PNG"][0] == pytest.approx(p_clean, abs=1e-3)
    buf = io.BytesIO()
    Image.open(img).save(buf, format="JPEG", quality=90)
    p_jpeg = score_tiled(det.detector, load_tensor(buf.getvalue())).p_fake
    assert checks["JPEG 90"][0] == pytest.approx(p_jpeg, abs=1e-3)
    # and the conclusion follows the control: a step that already makes the clean photo real is named so
    for clean, attacked, says in checks.values():
        if clean <= det.threshold:
            assert "alone already makes the clean image real: the attack is not what makes it real" in says
        elif attacked <= det.threshold:
            assert says.startswith("the attack survives")
        else:
            assert says.startswith("the attack does not survive")

    # resize: the detector's 128×128 input is attacked and downloaded, and the page says why
    page.locator("#attack-scoring label", has_text="resize to the detector's input").click()
    expect(verdict).to_contain_text(f"{img.name} · FGSM ε = 0.010 · resize", timeout=240_000)
    text = verdict.inner_text()
    assert "the centre 477×477 of the 720×477 upload resized to the detector's 128×128 input" in text
    assert len(_survival(text)) == 3
    expect(page.locator("#attack-download")).to_contain_text("128×128: the detector's input on the resize path")
    expect(page.locator("#attack-download a").first).to_have_attribute("href", re.compile(r"_fgsm_eps0\.010\.png$"))
    assert Image.open(_download(page, tmp_path, "adv-resize.png")).size == (128, 128)


def _boxes(page, selector: str) -> list[dict]:
    return page.locator(selector).evaluate_all(
        "els => els.map(e => { const r = e.getBoundingClientRect(); "
        "return {x: r.x, y: r.y, w: r.width, h: r.height}; })")


def _overlap(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and \
        b["y"] < a["y"] + a["h"]


def test_a_set_reports_each_class_and_a_readable_transfer_matrix(page):
    page.get_by_role("tab", name="Attack", exact=True).click(timeout=240_000)
    dets = page.locator("#attack-transfer-detectors")
    expect(dets).to_contain_text("cnn-resnet18")
    page.locator("#attack-limit input").fill("24")
    page.locator("#attack-transfer-eps textarea, #attack-transfer-eps input").first.fill("0.02, 0.05")
    page.locator("#attack-transfer-run").click()
    findings = page.locator("#attack-transfer-findings")
    expect(findings).to_contain_text("per class: fakes called real", timeout=300_000)
    text = findings.inner_text()
    # reals turned fake are reported on their own, not only inside the accuracy
    m = re.search(r"reals called fake (\d+\.\d) % clean → eps 0.02: (\d+\.\d) % \((\d+) turned fake\); "
                  r"eps 0.05: (\d+\.\d) % \((\d+) turned fake\) \(of (\d+) reals\)", text)
    assert m, text
    assert int(m.group(6)) > 0 and 0 <= int(m.group(3)) <= int(m.group(6))
    # strongest and weakest are two different pairs, or the line says there is only one / all are equal
    for line in re.findall(r"Transfer at eps [\d.]+: [^\n]+", text):
        if "strongest" in line:
            strong, weak = line.split("weakest")
            assert set(re.findall(r"\S+→\S+?(?=[ ,])", strong)).isdisjoint(re.findall(r"\S+→\S+?(?=[ ,])", weak))
        else:
            assert "one pair only" in line or "pairs equal" in line, line
    table = page.locator("#attack-transfer-table")
    for column in ("fakes_called_real_after", "reals_called_fake_after", "reals_turned_fake"):
        expect(table).to_contain_text(column)
    # the matrix's tick labels stay off its cells
    matrix = page.locator("#attack-transfer-matrix")
    expect(matrix.locator("g.ytick text").first).to_be_visible(timeout=60_000)
    cells = _boxes(page, "#attack-transfer-matrix rect.nsewdrag")
    # every panel's tick labels: plotly's groups are xtick, x2tick, ..., ytick, y2tick, ...
    labels = _boxes(page, "#attack-transfer-matrix g[class$='tick'] text")
    assert len(cells) == 2 and len(labels) >= 4
    assert not [(lab, cell) for lab in labels for cell in cells if _overlap(lab, cell)]


def test_demo_examples_offer_every_generator_and_two_reals_and_attack_when_picked(page, demo_root):
    from detectlab.catalog import demo_generators

    page.get_by_role("tab", name="Attack").click()
    page.locator("#attack-example input").click()
    options = page.get_by_role("option")
    expect(options).to_have_count(len(demo_generators()) + 2, timeout=30_000)
    texts = options.all_inner_texts()
    assert sum(t.startswith("real:") for t in texts) == 2 and {t.split(":")[0] for t in texts} >= set(demo_generators())
    options.filter(has_text="real:").first.click()
    expect(page.locator("#attack-verdict")).to_contain_text("P(fake)", timeout=120_000)
