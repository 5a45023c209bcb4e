"""The real app in headless chromium: it starts offline, binds to loopback, shows the demo."""

from __future__ import annotations

import io
import json
import socket
import zipfile
from urllib.parse import urlparse

import pytest

from detectlab.data import discover

pytestmark = pytest.mark.browser


def test_data_tab_shows_demo_counts(page, demo_root):
    counts = discover(demo_root).counts()
    page.get_by_role("tab", name="Data").click()
    table = page.locator("#data-counts")
    for gen in ("transposed-conv", "resize-conv", "pixel-shuffle"):
        table.get_by_text(gen, exact=True).wait_for()
    text = table.inner_text()
    assert str(counts["real"]) in text and str(counts["pixel-shuffle"]) in text
    assert page.locator("#data-gallery img").count() >= 4 * 3
    assert page.locator("#data-fingerprints img").count() == 3


def test_folder_outside_roots_is_refused(page):
    page.get_by_role("tab", name="Data").click()
    page.locator("#data-counts").get_by_text("transposed-conv", exact=True).wait_for()
    page.locator("#data-folder textarea, #data-folder input").first.fill("/etc")
    page.locator("#data-open").click()
    page.locator("#data-status").get_by_text("not an existing folder inside the configured data roots").wait_for()
    # the tab still works afterwards
    page.locator("#data-folder textarea, #data-folder input").first.fill("demo-inpainted")
    page.locator("#data-open").click()
    page.locator("#data-counts").get_by_text("images+masks").wait_for()


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
    page.locator("#data-zip input[type=file]").set_input_files(str(buf))
    page.locator("#data-import").click()
    page.locator("#data-counts").get_by_text("mygan", exact=True).wait_for()
    assert page.locator("#data-choice input").first.input_value().startswith("uploaded: mine")
    assert "layout `real+generators`" in page.locator("#data-status").inner_text()


def test_server_binds_to_loopback_only(app_url):
    host = urlparse(app_url).hostname
    assert host == "127.0.0.1"
    port = urlparse(app_url).port
    # the port answers on loopback ...
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    # ... and not on the machine's other addresses
    other = socket.gethostbyname(socket.gethostname())
    if other.startswith("127."):
        pytest.skip("no non-loopback address on this machine")
    with pytest.raises(OSError):
        socket.create_connection((other, port), timeout=2)


def test_app_py_starts_offline_and_serves(demo_root, tmp_path):
    """`python app.py` (what `run.sh app` runs) serves the page on 127.0.0.1 without network."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    number = port.getsockname()[1]
    port.close()
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "YOLO_OFFLINE")}
    env["DETECTLAB_HOME"] = str(tmp_path / "home")
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(number)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{number}/", timeout=2) as resp:
                    assert resp.status == 200 and b"DetectLab" in resp.read()
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
                time.sleep(0.5)
        else:
            pytest.fail("app.py did not serve within 90 s")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
