"""Input widgets that hand uploads to DetectLab's decoder untouched.

``gr.Image(type="filepath")`` opens every upload with PIL inside Gradio and, for any mode
other than its ``image_mode``, re-encodes a converted copy: a 16-bit PNG reaches the
detector as a clipped 8-bit image, a decompression bomb is decoded before DetectLab's
pixel guard, and a corrupt file gets Gradio's generic "Could not preprocess input".
``ImageInput`` keeps the image widget (preview, drag and drop, webcam-free upload) but its
value is the uploaded file's path as received, so the tab, the API and the CLI all decode
through ``detectlab.data`` and give the same P(fake) and the same messages.
"""

from __future__ import annotations

import gradio as gr



class ImageInput(gr.Image):
    """An image upload whose value is the path of the file exactly as uploaded."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("type", "filepath")
        kwargs.setdefault("image_mode", None)
        kwargs.setdefault("sources", ["upload"])
        super().__init__(*args, **kwargs)

    def preprocess(self, payload):  # noqa: D401 - gradio's hook
        if payload is None:
            return None
        if getattr(payload, "url", None) and str(payload.url).startswith("data:"):
            raise gr.Error("upload the image as a file (inline data URLs are not accepted)")
        if payload.path is None:
            raise gr.Error("the upload carried no file")
        return str(payload.path)
