"""The real app in headless chromium: it starts offline, binds to loopback, shows the demo."""

from __future__ import annotations

import io
import socket
import zipfile
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from detectlab.data import discover

pytestmark = pytest.mark.browser


def test_data_tab_shows_demo_counts(page, demo_root, tmp_path):
    counts = discover(demo_root).counts()
    page.get_by_role("tab", name="Data").click()
    table = page.locator("#data-counts")
    from detectlab.generators.designs import DESIGNS

    for gen in DESIGNS:
        expect(table).to_contain_text(gen, timeout=120_000)
    text = table.inner_text()
    assert str(counts["real"]) in text and str(counts["pixel-shuffle"]) in text
    assert page.locator("#data-gallery img").count() >= 4 * 3
    fingerprints = page.locator("#data-fingerprints")
    assert fingerprints.locator("img").count() == len(DESIGNS)  # every design's FP(R, S), captioned with its group
    expect(fingerprints).to_contain_text("FP(real, latent-bilinear) — latent, bilinear-conv, spectral loss, held-out group")
    page.screenshot(path=str(tmp_path / "data-tab.png"), full_page=True)


def test_folder_outside_roots_is_refused(page):
    page.get_by_role("tab", name="Data").click()
    expect(page.locator("#data-counts")).to_contain_text("transposed-conv", timeout=120_000)
    page.locator("#data-folder textarea, #data-folder input").first.fill("/etc")
    page.locator("#data-open").click()
    expect(page.locator("#data-status")).to_contain_text("not an existing folder inside the configured data roots", timeout=120_000)
    # the tab still works afterwards
    page.locator("#data-folder textarea, #data-folder input").first.fill("demo-inpainted")
    page.locator("#data-open").click()
    expect(page.locator("#data-counts")).to_contain_text("images+masks", timeout=120_000)


def test_zip_upload_becomes_a_dataset(page, tmp_path):
    from PIL import Image

    buf = tmp_path / "mine.zip"
    with zipfile.ZipFile(buf, "w") as zf:
        for cls in ("real", "mygan"):
            for i in range(3):
                b = io.BytesIO()
                Image.new("RGB", (32, 32), (40 * i, 90, 200 if cls == "real" else 10)).save(b, "PNG")
                zf.writestr(f"mine/{cls}/{i}.png", b.getvalue())
    page.get_by_role("tab", name="Data").click()
    expect(page.locator("#data-counts")).to_contain_text("transposed-conv", timeout=120_000)  # initial load done
    page.locator("#data-zip input[type=file]").set_input_files(str(buf))
    page.locator("#data-import").click()
    expect(page.locator("#data-counts")).to_contain_text("mygan", timeout=120_000)
    label = page.locator("#data-choice input").first.input_value()
    assert label.startswith("uploaded: mine")
    expect(page.locator("#data-status")).to_contain_text("mine — layout real+generators, 6 images")
    # the new set reaches the other tabs' pickers without a restart: they read their choices when opened
    for tab, picker in (("Train", "#train-data"), ("Fingerprints", "#fp-data")):
        page.get_by_role("tab", name=tab, exact=True).click()
        page.locator(f"{picker} input").first.click()
        expect(page.locator(f"{picker} [role=option]", has_text=label)).to_be_visible(timeout=20_000)
        page.keyboard.press("Escape")


def test_server_binds_to_loopback_only(app_url):
    host = urlparse(app_url).hostname
    assert host == "127.0.0.1"
    port = urlparse(app_url).port
    # the port answers on loopback ...
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    # ... and not on this machine's other addresses
    others = _own_non_loopback_ipv4()
    if not others:
        pytest.skip("no non-loopback interface on this machine")
    for addr in others:
        with pytest.raises(OSError):
            socket.create_connection((addr, port), timeout=2)


def _own_non_loopback_ipv4() -> list[str]:
    """This machine's own IPv4 addresses (SIOCGIFADDR per interface), loopback excluded."""
    import fcntl
    import struct

    out = []
    for _, name in socket.if_nameindex():
        if name == "lo":
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))
            except OSError:
                continue
        out.append(socket.inet_ntoa(packed[20:24]))
    return [a for a in out if not a.startswith("127.")]


def test_app_py_starts_offline_and_serves(demo_root, tmp_path):
    """`python app.py` (what `run.sh app` runs) serves the page on 127.0.0.1 without network.

    ``--port 0``: the app binds a free port itself and prints its URL, which is read back here.
    """
    import os
    import queue
    import re
    import subprocess
    import sys
    import threading
    import urllib.request

    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "YOLO_OFFLINE")}
    env["DETECTLAB_HOME"] = str(tmp_path / "home")
    proc = subprocess.Popen([sys.executable, "app.py", "--port", "0"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout] + [lines.put(None)], daemon=True).start()
    seen = []
    try:
        while True:
            line = lines.get(timeout=90)  # queue.Empty fails the test if nothing is printed for 90 s
            assert line is not None, f"app.py exited ({proc.wait()}): {''.join(seen)[-2000:]}"
            seen.append(line)
            m = re.search(r"running on (http://127\.0\.0\.1:(\d+)/)", line)
            if m:
                break
        assert int(m.group(2)) > 0
        with urllib.request.urlopen(m.group(1), timeout=30) as resp:
            assert resp.status == 200 and b"DetectLab" in resp.read()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.parametrize("name, status", [("page.html", 403), ("image.svg", 403), ("photo.png", 200)])
def test_the_server_sends_only_raster_images_from_data_roots(app_url, name, status):
    """The running app wraps Gradio in DetectLab's serving guard (detectlab.ui.serving)."""
    import shutil
    import urllib.error
    import urllib.request

    from detectlab import config

    folder = config.datasets_dir() / f"served-{name.replace('.', '-')}"
    folder.mkdir(exist_ok=True)
    target = folder / name
    if name.endswith(".png"):
        shutil.copy(config.ASSETS / "fingerprints" / "pixel-shuffle.png", target)
    else:
        target.write_text("<script>alert(1)</script>")
    try:
        with urllib.request.urlopen(f"{app_url}gradio_api/file={target}", timeout=30) as resp:
            got, headers = resp.status, resp.headers
    except urllib.error.HTTPError as err:
        got, headers = err.code, err.headers
    assert got == status
    assert headers["x-content-type-options"] == "nosniff"


def test_data_gallery_captions_are_readable_in_full(page, demo_root):
    page.get_by_role("tab", name="Data").click()
    expect(page.locator("#data-counts")).to_contain_text("transposed-conv", timeout=120_000)
    captions = page.locator("#data-gallery .caption-label")
    expect(captions.first).to_be_visible(timeout=60_000)
    texts = captions.all_inner_texts()
    assert any(t.startswith("transposed-conv: p") and t.endswith(".png") for t in texts), texts[:3]
    # every caption shows all its text (no ellipsis, nothing clipped) and stays inside its thumbnail
    cut = page.evaluate("""() => [...document.querySelectorAll('#data-gallery .caption-label')].filter(e => {
        const item = e.closest('.gallery-item') || e.parentElement;
        const c = e.getBoundingClientRect(), t = item.getBoundingClientRect();
        return e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1
            || c.left < t.left - 1 || c.right > t.right + 1 || c.top < t.top - 1 || c.bottom > t.bottom + 1;
    }).map(e => e.textContent)""")
    assert cut == [], cut
