"""The DetectLab Gradio app: one Blocks, one tab per capability."""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass, field

from detectlab.config import set_offline_env

set_offline_env()  # before gradio/timm/ultralytics are imported

import gradio as gr  # noqa: E402

from detectlab import __version__, config  # noqa: E402
from detectlab.ui import (  # noqa: E402
    attack_tab, data_tab, detect_tab, fingerprints_tab, localize_tab, robustness_tab, train_tab,
)
from detectlab.ui.common import coming  # noqa: E402
from detectlab.ui.serving import RasterOnlyFromDataRoots  # noqa: E402

TITLE = "DetectLab"

_EXPERIMENTS = ("Experiments", "Cross-generator matrix, leave-one-generator-out, few-shot curves and trace-risk compositions.")


def build_app() -> gr.Blocks:
    """Build the Blocks app (does not launch it)."""
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.Markdown(f"# DetectLab <small>v{__version__}</small>\nIs this image synthetic, where, why — and how easily is the detector fooled?")
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
                coming(*_EXPERIMENTS)
            with gr.Tab("Data", id="data"):
                choice, outputs = data_tab.build()
        demo.load(data_tab.show_dataset, choice, outputs, api_name=False)
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
        self.thread.join(timeout=10)


def serve(blocks: gr.Blocks | None = None, host: str = "127.0.0.1", port: int = 0,
          startup_seconds: float = 60.0) -> Served:
    """Serve the app on ``host:port`` in a background thread and return once it accepts requests.

    The socket is bound here, before the server starts, and handed to it: ``port=0`` lets the
    system pick a free port, which is read back from the socket — no port is probed, closed
    and re-bound, so two servers started at once never race for one port.
    """
    import fastapi
    import uvicorn

    blocks = blocks or build_app()
    blocks.queue(default_concurrency_limit=4)
    app = gr.mount_gradio_app(
        fastapi.FastAPI(), blocks, path="",
        allowed_paths=[str(r) for r in config.data_roots()],
        max_file_size=config.MAX_UPLOAD_BYTES,
        footer_links=["api", "settings"],
        show_error=True,
    )
    app = RasterOnlyFromDataRoots(app, roots=config.data_roots())  # data roots serve raster images only
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="detectlab-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_seconds
    while not server.started:  # uvicorn sets this once the lifespan startup has run
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the app server did not start on {host}:{bound}")
        time.sleep(0.01)
    return Served(f"http://{host}:{bound}/", bound, server, thread)


def launch(host: str = "127.0.0.1", port: int | None = None) -> None:
    """Build and serve until interrupted; binds to 127.0.0.1 unless told otherwise.

    ``port`` 0 picks a free port; the URL printed says which.
    """
    port = int(os.environ.get("DETECTLAB_PORT", 7860)) if port is None else port
    served = serve(host=host, port=port)
    print(f"DetectLab running on {served.url}", flush=True)
    try:
        served.thread.join()
    except KeyboardInterrupt:
        served.close()
