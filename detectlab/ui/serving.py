"""What the app's HTTP server may send back: raster images only from the data roots, no file inline
as active content, nothing that names a server path in a message.

Gradio serves files under ``allowed_paths`` (the data roots: galleries show data-set images
without copying them) and its own cache of uploads and outputs. A data set is user content,
though: a stored ``.html`` or ``.svg`` served inline from the app's origin would run script in
the user's session, and ``manifest.json`` or weight files are nobody's business. Two guards,
neither tied to a URL:

- ``guard_file_server`` puts the rule into Gradio's own file permission check
  (``gradio.utils.is_allowed_file``), which every route that serves a file from disk consults
  (``/file=``, ``/file/``, and any route added later that serves files the same way): under a
  data root only raster images are allowed.
- ``ServedFileGuard`` (ASGI middleware) looks at every response, whatever route made it:
  each carries ``nosniff``, and a served file (a response with ``Content-Disposition``) whose
  type a browser would run (HTML, SVG, XML, JavaScript) goes out as a download
  (``attachment``, ``application/octet-stream``), never inline.

The same middleware keeps server paths out of what the app says: an error raised by any
endpoint, or a message a handler renders, that names a file in Gradio's upload cache or a
zip staging folder reaches the client with the file's own name instead (``widgets.scrub``).
File outputs (Gradio's ``FileData``, download URLs) are left exactly as they are.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Callable

from detectlab import config
from detectlab.data.decode import IMAGE_EXTENSIONS

_LONE_PATH = re.compile(r"(?:/|[a-z]+://)\S*")  # a bare path or URL: a file output, left as it is
#: Content types a browser renders as a document or runs: never served inline.
_ACTIVE_TYPES = (b"text/html", b"application/xhtml", b"image/svg", b"text/xml", b"application/xml",
                 b"text/javascript", b"application/javascript", b"application/x-javascript")


def raster_only(path: str | Path, roots: list[Path]) -> bool:
    """False for a file under a data root that is not a raster image (resolved first: no ``..`` tricks)."""
    try:
        resolved = Path(path).resolve()
    except (OSError, ValueError):
        return False
    in_root = any(resolved.is_relative_to(r) for r in roots)
    return not in_root or resolved.suffix.lower() in IMAGE_EXTENSIONS


def guard_file_server(roots: Callable[[], list[Path]] = config.data_roots) -> None:
    """Make Gradio's file permission check refuse non-raster files under the data roots (idempotent).

    ``roots`` is called at each check, so a data root added by the environment is guarded at once.
    """
    from gradio import utils

    original = utils.is_allowed_file
    if getattr(original, "_detectlab_guard", False):
        return

    @functools.wraps(original)
    def is_allowed_file(path, blocked_paths, allowed_paths, created_paths):
        if not raster_only(path, [Path(r).resolve() for r in roots()]):
            return False, "in_blocklist"
        return original(path, blocked_paths, allowed_paths, created_paths)

    is_allowed_file._detectlab_guard = True
    utils.is_allowed_file = is_allowed_file


def _scrub_value(obj, needles: tuple[str, ...]):
    from detectlab.ui.widgets import scrub

    if isinstance(obj, dict):
        if (obj.get("meta") or {}).get("_type") == "gradio.FileData":
            return obj
        return {k: _scrub_value(v, needles) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_scrub_value(v, needles) for v in obj]
    if isinstance(obj, str) and any(n in obj for n in needles) and not _LONE_PATH.fullmatch(obj):
        return scrub(obj)
    return obj


def scrub_events(body: bytes, needles: tuple[str, ...]) -> bytes:
    """Server-sent events with every message string scrubbed of upload-cache and staging paths."""
    if not any(n.encode() in body for n in needles):
        return body  # the usual case: nothing to look at
    lines = []
    for line in body.decode("utf-8", "surrogateescape").split("\n"):
        if line.startswith("data:"):
            try:
                line = "data: " + json.dumps(_scrub_value(json.loads(line[5:]), needles))
            except ValueError:
                pass
        lines.append(line)
    return "\n".join(lines).encode("utf-8", "surrogateescape")


def _path_needles() -> tuple[str, ...]:
    from detectlab.ui.widgets import upload_dirs

    return (*upload_dirs(), ".extract-")


class ServedFileGuard:
    """ASGI middleware over every response: ``nosniff`` always; a served file of an active type as a
    download; messages scrubbed of upload-cache and staging paths."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        needles = _path_needles()
        streaming = False

        async def guarded_send(message):
            nonlocal streaming
            if message["type"] == "http.response.start":
                message = {**message, "headers": _safe_headers(message.get("headers", []))}
                headers = dict((k.lower(), v) for k, v in message["headers"])
                streaming = headers.get(b"content-type", b"").startswith(b"text/event-stream")
            elif streaming and message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": scrub_events(message["body"], needles)}
            await send(message)

        return await self.app(scope, receive, guarded_send)


def _safe_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``nosniff`` on every response; a served file (it has a Content-Disposition) that a browser would
    render or run becomes a download."""
    out = [(k, v) for k, v in headers if k.lower() != b"x-content-type-options"]
    names = {k.lower(): v for k, v in out}
    served_file = b"content-disposition" in names
    if served_file and names.get(b"content-type", b"").lower().startswith(_ACTIVE_TYPES):
        filename = re.search(rb'filename\*?=[^;]+', names[b"content-disposition"])
        out = [(k, v) for k, v in out if k.lower() not in (b"content-type", b"content-disposition")]
        out += [(b"content-type", b"application/octet-stream"),
                (b"content-disposition", b"attachment" + (b"; " + filename.group(0) if filename else b""))]
    return [*out, (b"x-content-type-options", b"nosniff")]
