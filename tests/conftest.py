"""Shared fixtures: an isolated DetectLab home, the materialized demo, the running app, a browser."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Isolate state before any detectlab module reads it.
_HOME = Path(tempfile.mkdtemp(prefix="detectlab-test-home-"))
os.environ.setdefault("DETECTLAB_HOME", str(_HOME))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="session")
def demo_root() -> Path:
    """The demo detection set, materialized from the committed weights if needed."""
    from detectlab.demo.build import ensure_demo

    return ensure_demo()


@pytest.fixture(scope="session")
def app_url(demo_root):
    """The real app served for the whole session on a port the system picked (bound once, read back)."""
    from detectlab.ui.app import serve

    served = serve(host="127.0.0.1", port=0)
    yield served.url
    served.close()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    pg.goto(app_url)
    yield pg
    context.close()
