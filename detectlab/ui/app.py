"""The DetectLab Gradio app: one Blocks, one tab per capability."""

from __future__ import annotations

import os

from detectlab.config import set_offline_env

set_offline_env()  # before gradio/timm/ultralytics are imported

import gradio as gr  # noqa: E402

from detectlab import __version__, config  # noqa: E402
from detectlab.ui import data_tab, detect_tab, fingerprints_tab, train_tab  # noqa: E402
from detectlab.ui.common import coming  # noqa: E402

TITLE = "DetectLab"

_COMING = [
    ("Localize", "YOLOv8-seg masks of manipulated regions; TP/FP/FN colouring and pixel precision/recall/dice against a ground-truth mask."),
    ("Robustness", "Blur, JPEG, visible-patch and downsizing sliders that re-score an image live; sweeps over a test set."),
    ("Attack", "FGSM with an ε slider: residual, adversarial image, P(fake) before/after; confusion rate and transfer."),
    ("Experiments", "Cross-generator matrix, leave-one-generator-out, few-shot curves and trace-risk compositions."),
]


def build_app() -> gr.Blocks:
    """Build the Blocks app (does not launch it)."""
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.Markdown(f"# DetectLab <small>v{__version__}</small>\nIs this image synthetic, where, why — and how easily is the detector fooled?")
        with gr.Tabs():
            with gr.Tab("Detect", id="detect"):
                detect = detect_tab.build()
            with gr.Tab(_COMING[0][0], id="localize"):
                coming(*_COMING[0])
            with gr.Tab("Fingerprints", id="fingerprints"):
                fingerprints_tab.build()
            for name, what in _COMING[1:3]:
                with gr.Tab(name, id=name.lower()):
                    coming(name, what)
            with gr.Tab("Train", id="train"):
                train_tab.build()
            with gr.Tab("Experiments", id="experiments"):
                coming(*_COMING[3])
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
