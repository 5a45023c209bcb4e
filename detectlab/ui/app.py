"""The DetectLab Gradio app: one Blocks, one tab per capability."""

from __future__ import annotations

import os

from detectlab.config import set_offline_env

set_offline_env()  # before gradio/timm/ultralytics are imported

import gradio as gr  # noqa: E402

from detectlab import __version__, config  # noqa: E402
from detectlab.ui import (  # noqa: E402
    attack_tab, data_tab, detect_tab, fingerprints_tab, localize_tab, robustness_tab, train_tab,
)
from detectlab.ui.common import coming  # noqa: E402

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


def launch(host: str = "127.0.0.1", port: int | None = None, **kwargs):
    """Build and launch; binds to 127.0.0.1 unless told otherwise."""
    demo = build_app()
    demo.queue(default_concurrency_limit=4)
    port = port or int(os.environ.get("DETECTLAB_PORT", 7860))
    return demo.launch(
        server_name=host,
        server_port=port,
        allowed_paths=[str(r) for r in config.data_roots()],
        max_file_size=config.MAX_UPLOAD_BYTES,
        footer_links=["api", "settings"],
        show_error=True,
        **kwargs,
    )
