"""Shared fixtures: an isolated DetectLab home, the materialized demo, the running app, a browser, one tiny
trained localizer per architecture; and the fast inner loop's marks.

The fast inner loop is ``bash run.sh test -m "not slow"``: every test file keeps its fast tests there,
the full suite (``bash run.sh test``) runs everything. Tests that drive the browser (those using the
``page`` or ``browser`` fixtures, or marked ``browser``) are marked slow here, so no file has to.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
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


# -- the fast inner loop -------------------------------------------------------------------

#: Fixtures that start headless chromium: a test using one is slow (and needs the browser).
BROWSER_FIXTURES = frozenset({"page", "browser"})


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: it must see these marks
def pytest_collection_modifyitems(config, items):
    for item in items:
        if BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A browser test that fails (often a wait that timed out) reports what every thread of this process was
    doing at that moment, the app server's handlers included: a stalled event names where it waits."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when == "call" and BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())):
        import sys
        import threading
        import traceback

        names = {t.ident: t.name for t in threading.enumerate()}
        stacks = [f"--- thread {names.get(ident, ident)}\n" + "".join(traceback.format_stack(frame)[-5:])
                  for ident, frame in sys._current_frames().items()]
        report.sections.append(("threads when the test failed (last 5 frames each)", "\n".join(stacks)))


@pytest.fixture(scope="session")
def fast_loop(request) -> bool:
    """True in the fast inner loop: this run's ``-m`` expression leaves out tests marked slow (``-m "not slow"``).

    For a test that is fast only when nothing it re-measures changed (``tests/test_verdicts.py``)."""
    return "not slow" in " ".join((request.config.getoption("markexpr") or "").split())


# -- one tiny trained localizer per architecture, shared by the session ----------------------

@dataclass
class TinyLocalizer:
    """A localizer trained once per session on ``tiny_masked_set`` (2 epochs, 64 px), with what the
    training reported: ``result`` (``train_localizer``'s return), per-epoch rows, progress texts, and
    every network attempt made while it trained (none expected)."""

    arch: str
    checkpoint: Path
    data: Path
    result: dict
    epochs: list = field(default_factory=list)
    progress: list = field(default_factory=list)
    network_attempts: list = field(default_factory=list)


@pytest.fixture(scope="session")
def tiny_masked_set(tmp_path_factory) -> Path:
    """images/ + masks/ (24 images of 64 px, an ellipse each, groups of 2): the localizers' tiny set."""
    from tests.test_localize import make_masked_set

    return make_masked_set(tmp_path_factory.mktemp("tiny-masked") / "set", n=24, size=64)


@pytest.fixture(scope="session")
def tiny_localizer(tiny_masked_set, tmp_path_factory):
    """``tiny_localizer(arch)`` -> ``TinyLocalizer``: "yolov8n-seg" or "unet", trained on first use and then
    shared, so a session trains each architecture once however many files need a trained one.

    Trains with the network refused (sockets and ultralytics' download helpers record and fail);
    tests must not change the files (copy the checkpoint first)."""
    trained: dict[str, TinyLocalizer] = {}

    def get(arch: str) -> TinyLocalizer:
        if arch not in trained:
            trained[arch] = _train_tiny_localizer(arch, tiny_masked_set, tmp_path_factory.mktemp(f"tiny-{arch}"))
        return trained[arch]

    return get


def _train_tiny_localizer(arch: str, data: Path, out: Path) -> TinyLocalizer:
    import socket

    from detectlab.localize import train_localizer
    from detectlab.localize.yolo import _yolo_class

    _yolo_class()  # sets the offline environment before ultralytics is imported
    import ultralytics.utils.downloads as downloads

    tiny = TinyLocalizer(arch, Path(), data, {})

    def refuse(what):
        def _refuse(*args, **kwargs):
            tiny.network_attempts.append(f"{what}{args[:2]}")
            raise OSError(f"network disabled while the tiny localizer trains ({what})")
        return _refuse

    original = downloads.attempt_download_asset

    def local_only(file, *args, **kwargs):  # ultralytics routes every weights path here; a local file passes
        if not Path(str(file)).exists():
            return refuse("ultralytics.attempt_download_asset")(file)
        return original(file, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        for name in ("connect", "connect_ex"):
            mp.setattr(socket.socket, name, refuse(f"socket.{name}"))
        mp.setattr(socket, "create_connection", refuse("socket.create_connection"))
        mp.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
        for name in ("safe_download", "download", "get_github_assets", "is_online"):
            mp.setattr(downloads, name, refuse(f"ultralytics.{name}"))
        mp.setattr(downloads, "attempt_download_asset", local_only)
        tiny.result = train_localizer(
            {"arch": arch, "data": str(data), "epochs": 2, "imgsz": 64, "batch": 8, "out_dir": str(out)},
            progress=lambda done, total=None, desc="": tiny.progress.append(desc), on_epoch=tiny.epochs.append)
    tiny.checkpoint = Path(tiny.result["checkpoint"])
    return tiny
