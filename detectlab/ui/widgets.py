"""Input widgets that hand uploads to DetectLab's decoder untouched, and messages that never leak paths.

``gr.Image(type="filepath")`` opens every upload with PIL inside Gradio and, for any mode
other than its ``image_mode``, re-encodes a converted copy: a 16-bit PNG reaches the
detector as a clipped 8-bit image, a decompression bomb is decoded before DetectLab's
pixel guard, and a corrupt file gets Gradio's generic "Could not preprocess input".
``ImageInput`` keeps the image widget (preview, drag and drop, webcam-free upload) but its
value is the uploaded file's path as received, so the tab, the API and the CLI all decode
through ``detectlab.data`` and give the same P(fake) and the same messages.

An upload lives in Gradio's cache under a random folder, and a zip is extracted into a
hidden staging folder: neither path means anything to the user, and both tell a remote
client how the server is laid out. ``scrub`` puts the file's own name in their place.
"""

from __future__ import annotations

import inspect
import re
import tempfile
from pathlib import Path

import gradio as gr

from detectlab import config
from detectlab.errors import DetectLabError
from detectlab.ui.common import error_markdown

_STAGING = re.compile(r"[^\s'\"`]*/\.[^/\s]*\.extract-[^/\s]*/")  # the folder a zip is extracted into, whole
_PATH_TAIL = r"/[^\s'\"`<>()\[\],;]*"


class ImageInput(gr.Image):
    """An image upload whose value is the path of the file exactly as uploaded."""

    #: Gradio's own image front end draws it (a subclass is otherwise looked up as a custom component).
    is_template = True

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("type", "filepath")
        kwargs.setdefault("image_mode", None)
        kwargs.setdefault("sources", ["upload"])
        super().__init__(*args, **kwargs)

    # Gradio sends the browser the properties named in ``__init__``'s signature: without
    # gr.Image's, the widget gets none (``buttons`` undefined) and the tab holding it stays blank.
    __init__.__signature__ = inspect.signature(gr.Image.__init__)

    def preprocess(self, payload):  # noqa: D401 - gradio's hook
        if payload is None:
            return None
        if getattr(payload, "url", None) and str(payload.url).startswith("data:"):
            raise gr.Error("upload the image as a file (inline data URLs are not accepted)")
        if payload.path is None:
            raise gr.Error("the upload carried no file")
        return str(payload.path)


def upload_dirs() -> list[str]:
    """Folders where Gradio keeps uploads (the configured one and its default), resolved."""
    dirs = {str(Path(tempfile.gettempdir(), "gradio").resolve())}
    try:
        from gradio.utils import get_upload_folder

        dirs.add(str(Path(get_upload_folder()).resolve()))
    except Exception:  # noqa: BLE001 - an older gradio: the default folder is still covered
        pass
    return sorted(dirs, key=len, reverse=True)


def scrub(text: str, *uploads: str | Path | None) -> str:
    """``text`` with every upload-cache path replaced by its base name and zip staging folders removed.

    Exact upload paths (which may hold spaces) are replaced first; any other path under the
    upload cache is then shortened to its last component.
    """
    for up in uploads:
        if up:
            for form in {str(up), str(Path(up).resolve())}:
                text = text.replace(form, Path(up).name)
    text = _STAGING.sub("", text)
    for folder in upload_dirs():
        text = re.sub(re.escape(folder) + _PATH_TAIL, lambda m: Path(m.group(0)).name, text)
    return text


def message(exc: BaseException, *uploads: str | Path | None) -> str:
    """``error_markdown`` of ``exc`` with paths scrubbed (see ``scrub``)."""
    return scrub(error_markdown(exc), *uploads)


def api_error(exc: BaseException, *uploads: str | Path | None) -> gr.Error:
    """The ``gr.Error`` an API endpoint raises for ``exc``: DetectLab's message, paths scrubbed."""
    if isinstance(exc, gr.Error):
        return gr.Error(scrub(str(exc.message), *uploads))
    if isinstance(exc, DetectLabError):
        return gr.Error(scrub(str(exc), *uploads))
    return gr.Error(scrub(f"unexpected error (the app keeps running): {type(exc).__name__}: {exc}", *uploads))


_pruned_at = 0.0


def output_path(name: str) -> Path:
    """A fresh file path for an output the app hands to Gradio (a heatmap, a CSV), under ``DETECTLAB_HOME/outputs``.

    Gradio copies an output file into its own cache (atomically, unlike a PIL image it
    encodes itself, which it rewrites in place while another request may be downloading
    it); the original is only needed until then, so output folders older than an hour are
    removed here, at most once a minute.
    """
    import shutil
    import time
    import uuid

    global _pruned_at
    root = config.home() / "outputs"
    now = time.time()
    if now - _pruned_at > 60:
        _pruned_at = now
        for old in root.glob("*") if root.is_dir() else []:
            try:
                if now - old.stat().st_mtime > config.UPLOAD_CACHE_SECONDS:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                continue
    folder = root / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return folder / name
