"""The DetectLab Gradio app: one Blocks, one tab per capability."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field

from detectlab.config import set_offline_env

set_offline_env()  # before gradio/timm/ultralytics are imported

import gradio as gr  # noqa: E402

from detectlab import __version__, config  # noqa: E402
from detectlab.ui import (  # noqa: E402
    api, attack_tab, data_tab, detect_tab, experiments_tab, fingerprints_tab, first_run, localize_tab, rest,
    robustness_tab, state, train_tab, widgets,
)
from detectlab.ui.serving import ServedFileGuard, guard_file_server  # noqa: E402

TITLE = "DetectLab"

def build_app() -> gr.Blocks:
    """Build the Blocks app (does not launch it)."""
    # uploads older than an hour leave Gradio's cache (checked hourly; all of it when the server stops)
    cache = (config.UPLOAD_CACHE_SECONDS, config.UPLOAD_CACHE_SECONDS)
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=cache) as demo:
        gr.Markdown(f"# DetectLab <small>v{__version__}</small>\nIs this image synthetic, where, why — and how easily is the detector fooled?")
        first_run.build()
        with gr.Tabs():
            with gr.Tab("Detect", id="detect"):
                detect = detect_tab.build()
            with gr.Tab("Localize", id="localize"):
                localize_tab.build()
            with gr.Tab("Fingerprints", id="fingerprints"):
                fingerprints_tab.build()
            with gr.Tab("Robustness", id="robustness"):
                robustness_tab.build()
            with gr.Tab("Attack", id="attack"):
                attack_tab.build()
            with gr.Tab("Train", id="train"):
                train_tab.build()
            with gr.Tab("Experiments", id="experiments"):
                experiments_tab.build()
            with gr.Tab("Data", id="data"):
                choice, outputs, cache_row = data_tab.build()
        api.build()  # the public endpoints, all in one place
        demo.load(data_tab.show_dataset, choice, outputs, api_name=False)
        demo.load(data_tab.feature_cache_row, None, cache_row, api_name=False)
        demo.load(detect_tab.refresh_detectors, detect["detector"], detect["detector"], api_name=False)
    return demo


@dataclass
class Served:
    """A running app server: its URL, its port and how to stop it."""

    url: str
    port: int
    server: object = field(repr=False)
    thread: threading.Thread = field(repr=False)

    def close(self) -> None:
        self.server.should_exit = True
        first_run.stop(timeout=10)      # cancel a first-start derivation (it stops between batches of images)
        self.thread.join(timeout=20)
        widgets.clear_server_files()    # the uploads and outputs this server left in DETECTLAB_HOME


def serve(blocks: gr.Blocks | None = None, host: str = "127.0.0.1", port: int = 0,
          startup_seconds: float = 60.0, auth: tuple[str, str] | None = None) -> Served:
    """Serve the app on ``host:port`` in a background thread and return once it accepts requests.

    The socket is bound here, before the server starts, and handed to it: ``port=0`` lets the
    system pick a free port, which is read back from the socket — no port is probed, closed
    and re-bound, so two servers started at once never race for one port. ``auth`` (default:
    ``DETECTLAB_USER`` / ``DETECTLAB_PASSWORD`` when both are set) makes every page and API
    call ask for that login, the REST routes under ``/api/v1`` (``ui.rest``) included.
    """
    import fastapi
    import uvicorn

    blocks = blocks or build_app()
    blocks.queue(default_concurrency_limit=4)
    login = auth if auth is not None else config.login()
    app = fastapi.FastAPI()
    rest.mount(app, login)  # /api/v1: plain JSON routes, same login; before Gradio's root mount takes every path
    app = gr.mount_gradio_app(
        app, blocks, path="",
        allowed_paths=[str(r) for r in config.data_roots()],
        max_file_size=config.MAX_UPLOAD_BYTES,
        footer_links=["api", "settings"],
        show_error=True,
        auth=login,
        head=experiments_tab.page_head(),
    )
    guard_file_server()  # Gradio's file server: only raster images leave a data root, whatever the route
    app = ServedFileGuard(app)  # every response: nosniff, active content only as a download, no server paths
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and without it every request
    # on a kept-alive connection waited ~40 ms (Nagle against the client's delayed ACK)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    # open connections (a client's event stream) get 5 s to finish, then the app's shutdown runs anyway:
    # it clears the upload cache, which an endless wait for a lingering client would skip
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="detectlab-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_seconds
    while not server.started:  # uvicorn sets this once the lifespan startup has run
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the app server did not start on {host}:{bound}")
        time.sleep(0.01)
    state.start()  # the run queue's watcher from start-up: queued runs start, dead runs are marked failed
    return Served(f"http://{host}:{bound}/", bound, server, thread)


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this machine can reach."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warnings(host: str, share: bool = False, login: bool = False) -> list[str]:
    """What serving on ``host`` (and through a share link) exposes, as lines for stderr."""
    lines = []
    who = "anyone who can reach this machine's network" if not is_loopback(host) else ""
    if who:
        lines.append(f"warning: DetectLab listens on {host}, not 127.0.0.1: {who} can upload files, run the "
                     "detectors, start training and read every data set in the data roots.")
    if share:
        lines.append("warning: --share opens a public gradio.live link: anyone with the link can use this app "
                     "and the files it can read.")
    if lines and not login:
        lines.append("warning: no login is set: set DETECTLAB_USER and DETECTLAB_PASSWORD to require one.")
    return lines


def launch(host: str = "127.0.0.1", port: int | None = None, share: bool = False) -> None:
    """Build and serve until interrupted; binds to 127.0.0.1 unless told otherwise.

    ``port`` 0 picks a free port; the URL printed says which. Another host or ``share``
    prints what that exposes to stderr first.
    """
    port = int(os.environ.get("DETECTLAB_PORT", 7860)) if port is None else port
    for line in exposure_warnings(host, share, login=config.login() is not None):
        print(line, file=sys.stderr, flush=True)
    if first_run.start_in_background() is not None:
        print("first start: deriving the demo images in the background (minutes on 2 cores); the page shows progress and the time left",
              flush=True)
    served = serve(host=host, port=port)
    print(f"DetectLab running on {served.url}", flush=True)
    if share:
        _share(served)
    _serve_until_stopped(served)


def _serve_until_stopped(served: Served) -> None:
    """Wait for Ctrl-C or SIGTERM, then stop cleanly: the app's shutdown clears the upload cache.

    Handlers are installed explicitly: a server started in the background inherits an ignored
    SIGINT (no KeyboardInterrupt ever comes), and Python's default SIGTERM exits at once,
    skipping the shutdown.
    """
    stop = threading.Event()
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
        except ValueError:  # not the main thread: the caller stops the server itself
            pass
    try:
        while served.thread.is_alive() and not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        served.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _share(served: Served) -> None:
    """Open Gradio's share tunnel to the running server; say so (and keep serving locally) if it cannot."""
    import secrets

    from gradio import networking

    try:
        from urllib.parse import urlparse

        host = urlparse(served.url).hostname or "127.0.0.1"
        local = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        url = networking.setup_tunnel(local, served.port, secrets.token_urlsafe(32), None, None)
        print(f"DetectLab public link: {url}", flush=True)
    except Exception as exc:  # noqa: BLE001 - offline machines cannot reach the share server
        print(f"warning: no share link ({type(exc).__name__}: {exc}); serving on {served.url} only",
              file=sys.stderr, flush=True)
