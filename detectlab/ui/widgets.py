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
client how the server is laid out. ``scrub`` puts the file's own name in their place;
``plain_message`` also shows data-root paths relative to their root, in plain text (no HTML
entities), for messages read through the API as much as on the page.

Files the app hands to Gradio go to ``DETECTLAB_HOME/outputs`` (``output_path``), kept by count
and by age; ``clear_server_files`` is the server's shutdown step that removes its uploads and
outputs.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import tempfile
import threading
import time
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


def relative_to_roots(text: str) -> str:
    """``text`` with every path inside a data root shown relative to that root (as the folder box takes it:
    ``demo``, ``mine/real/a.png``) and each root itself by its name."""
    for root in sorted(config.data_roots(), key=lambda r: len(str(r)), reverse=True):
        text = text.replace(str(root) + "/", "").replace(str(root), root.name)
    return text


def plain_text(text: str) -> str:
    """``text`` safe to show in a Markdown box and readable as it is through the API: no HTML entities.

    Markdown shows quotes and ampersands as they are; only angle brackets could open a tag,
    so they become the look-alike ‹ › (a file name cannot turn into markup either way).
    """
    return text.replace("<", "‹").replace(">", "›")


def plain_message(exc: BaseException, *uploads: str | Path | None) -> str:
    """A one-paragraph Markdown message for ``exc`` in plain text: no HTML entities, no server paths.

    Like ``message``, but paths inside a data root are shown relative to it and the text is not
    HTML-escaped (``plain_text``), so an API client reads ``no 'real' folder``, not ``&#x27;``.
    """
    if isinstance(exc, DetectLabError):
        return f"**Error:** {plain_text(relative_to_roots(scrub(str(exc), *uploads)))}"
    detail = scrub(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", *uploads)
    return f"**Unexpected error** (the app keeps running): {plain_text(relative_to_roots(detail))[:500]}"


def api_error(exc: BaseException, *uploads: str | Path | None) -> gr.Error:
    """The ``gr.Error`` an API endpoint raises for ``exc``: DetectLab's message, paths scrubbed."""
    if isinstance(exc, gr.Error):
        return gr.Error(scrub(str(exc.message), *uploads))
    if isinstance(exc, DetectLabError):
        return gr.Error(scrub(str(exc), *uploads))
    return gr.Error(scrub(f"unexpected error (the app keeps running): {type(exc).__name__}: {exc}", *uploads))


_pruned_at = 0.0
_made: set[Path] = set()          # output folders this process created (removed when the server stops)
_made_lock = threading.Lock()
#: When this process started serving (about: when the app's modules were imported); shutdown clears
#: what appeared in the upload cache since then, and nothing another process still uses from before.
STARTED = time.time()
#: Output folders kept at least: a request writes its outputs and Gradio copies them right after it.
MIN_OUTPUTS = 16


def max_outputs() -> int:
    """How many output folders are kept at most, newest first (``DETECTLAB_MAX_OUTPUTS``, default 200, at least 16)."""
    try:
        return max(MIN_OUTPUTS, int(os.environ.get("DETECTLAB_MAX_OUTPUTS", 200)))
    except ValueError:
        return 200


def outputs_dir() -> Path:
    """``DETECTLAB_HOME/outputs``: the files the app hands to Gradio (heatmaps, CSVs), one folder per output."""
    return config.home() / "outputs"


def prune_outputs(keep: int | None = None, max_age: float | None = None, protect: Path | None = None) -> int:
    """Remove output folders beyond the ``keep`` newest (default ``max_outputs()``) and those older than
    ``max_age`` seconds (default ``config.UPLOAD_CACHE_SECONDS``); return how many were removed.

    ``protect`` (the folder a request just made) is never removed and counts as the newest."""
    keep = max_outputs() if keep is None else keep
    max_age = config.UPLOAD_CACHE_SECONDS if max_age is None else max_age
    root = outputs_dir()
    try:
        entries = []
        with os.scandir(root) as it:
            for e in it:
                if protect is not None and e.path == str(protect):
                    continue
                try:
                    entries.append((e.stat(follow_symlinks=False).st_mtime_ns, e.path))
                except OSError:
                    continue
    except OSError:
        return 0
    entries.sort(reverse=True)  # newest first
    keep -= protect is not None
    now = time.time_ns()
    removed = 0
    for rank, (mtime, path) in enumerate(entries):
        if rank >= keep or (now - mtime) / 1e9 > max_age:
            _remove(Path(path))
            removed += 1
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except OSError:
            pass
    with _made_lock:
        _made.discard(path)


def output_path(name: str) -> Path:
    """A fresh file path for an output the app hands to Gradio (a heatmap, a CSV), under ``DETECTLAB_HOME/outputs``.

    Gradio copies an output file into its own cache (atomically, unlike a PIL image it
    encodes itself, which it rewrites in place while another request may be downloading
    it); the original is only needed until then, so output folders are kept by count (the
    ``max_outputs()`` newest, checked at each call) and by age (an hour, checked at most once
    a minute), and the server's shutdown removes those this process made (``clear_server_files``).
    """
    import uuid

    global _pruned_at
    root = outputs_dir()
    folder = root / uuid.uuid4().hex
    folder.mkdir(parents=True)
    with _made_lock:
        _made.add(folder)
    now = time.time()
    by_age = now - _pruned_at > 60
    if by_age:
        _pruned_at = now
        with _made_lock:  # forget folders something else removed
            _made.intersection_update({p for p in _made if p.exists()})
    if by_age or _count(root) > max_outputs():
        prune_outputs(max_age=config.UPLOAD_CACHE_SECONDS if by_age else float("inf"), protect=folder)
    return folder / name


def _count(root: Path) -> int:
    try:
        with os.scandir(root) as it:
            return sum(1 for _ in it)
    except OSError:
        return 0


def clear_server_files(since: float | None = None) -> dict[str, int]:
    """What a stopping app server leaves behind, removed: its uploads and its outputs. Returns counts.

    - the upload cache (Gradio's upload folder, ``DETECTLAB_HOME/uploads`` by default): every file
      that appeared since ``since`` (default ``STARTED``, this process's start; uploads, half-written
      upload temp files, gallery images Gradio cached), every file older than the cache age, and
      the folders left empty;
    - the output folders (``DETECTLAB_HOME/outputs``) this process made, and any older than the cache age.

    Files another live server (same home, started earlier) still uses are left alone. Safe to
    call more than once.
    """
    since = STARTED if since is None else since
    now = time.time()
    removed = {"uploads": 0, "outputs": 0}
    for folder in _upload_folders():
        for dirpath, dirnames, filenames in os.walk(folder, topdown=False):
            for fname in filenames:
                path = os.path.join(dirpath, fname)
                try:
                    st = os.lstat(path)
                    changed = max(st.st_mtime, st.st_ctime)  # a copy may keep an old mtime; its ctime is new
                    if changed >= since - 1 or now - changed > config.UPLOAD_CACHE_SECONDS:
                        os.unlink(path)
                        removed["uploads"] += 1
                except OSError:
                    continue
            if dirpath != str(folder):
                try:
                    os.rmdir(dirpath)  # only when empty
                except OSError:
                    pass
    here = outputs_dir().resolve()
    with _made_lock:
        mine = [p for p in _made if p.resolve().is_relative_to(here)]  # this home's: a test may switch homes
    for path in mine:
        if path.exists():
            removed["outputs"] += 1
        _remove(path)
    removed["outputs"] += prune_outputs(keep=max_outputs())
    return removed


def _upload_folders() -> list[Path]:
    """DetectLab's ``uploads/`` (Gradio's upload folder unless the user set ``GRADIO_TEMP_DIR``), and
    Gradio's upload folder when it lies inside ``DETECTLAB_HOME``; a folder the user chose elsewhere
    (it may be shared, even ``/tmp``) is left to Gradio's own cache deletion."""
    home = config.home().resolve()
    out = [home / "uploads"]
    try:
        from gradio.utils import get_upload_folder

        out.append(Path(get_upload_folder()))
    except Exception:  # noqa: BLE001
        pass
    seen, folders = set(), []
    for f in out:
        try:
            r = f.resolve()
        except OSError:
            continue
        if r not in seen and r.is_dir() and r != home and r.is_relative_to(home):
            seen.add(r)
            folders.append(r)
    return folders
