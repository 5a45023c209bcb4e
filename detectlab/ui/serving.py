"""What the app's HTTP server may send back from the data roots: raster images only.

Gradio serves files under ``allowed_paths`` at ``/gradio_api/file=<path>``; the data roots
must be there so galleries can show data-set images without copying them. A data set is
user content, though: a stored ``.html`` or ``.svg`` served inline from the app's origin
would run script in the user's session. Zip imports already drop such files; this guard
makes sure nothing but a raster image ever leaves a data root, whatever put it there.

The same middleware keeps server paths out of what the app says: an error raised by any
endpoint, or a message a handler renders, that names a file in Gradio's upload cache or a
zip staging folder reaches the client with the file's own name instead (``widgets.scrub``).
File outputs (Gradio's ``FileData``, download URLs) are left exactly as they are.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

from detectlab import config
from detectlab.data.decode import IMAGE_EXTENSIONS

_FILE_ROUTE = "/file="
_LONE_PATH = re.compile(r"(?:/|[a-z]+://)\S*")  # a bare path or URL: a file output, left as it is


def _requested_file(path: str) -> Path | None:
    """The file a ``.../file=<path>`` request asks for, or None for any other route."""
    at = path.find(_FILE_ROUTE)
    if at < 0:
        return None
    return Path(unquote(path[at + len(_FILE_ROUTE):]))


def _blocked(path: str, roots: list[Path]) -> bool:
    requested = _requested_file(path)
    if requested is None:
        return False
    try:
        resolved = requested.resolve()
    except (OSError, ValueError):
        return True
    in_root = any(resolved.is_relative_to(r) for r in roots)
    return in_root and resolved.suffix.lower() not in IMAGE_EXTENSIONS


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


class RasterOnlyFromDataRoots:
    """ASGI middleware: 403 for any non-raster file under a data root; ``nosniff`` on every file.

    ``nosniff`` keeps a browser from reinterpreting a served file as HTML whatever its bytes.
    """

    def __init__(self, app, roots: list[Path] | None = None) -> None:
        self.app = app
        self.roots = [Path(r).resolve() for r in (roots if roots is not None else config.data_roots())]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if _blocked(path, self.roots):
            body = b"DetectLab serves only raster images (PNG, JPEG, WebP, BMP, TIFF) from data sets."
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", str(len(body)).encode()),
                                    (b"x-content-type-options", b"nosniff")]})
            await send({"type": "http.response.body", "body": body})
            return
        if _requested_file(path) is None:
            return await self.app(scope, receive, self._scrubbing(send))

        async def send_nosniff(message):
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-content-type-options"]
                message = {**message, "headers": [*headers, (b"x-content-type-options", b"nosniff")]}
            await send(message)

        return await self.app(scope, receive, send_nosniff)

    def _scrubbing(self, send):
        """``send`` that scrubs paths out of event streams (the queue's and ``/call``'s answers)."""
        needles = _path_needles()
        streaming = False

        async def send_scrubbed(message):
            nonlocal streaming
            if message["type"] == "http.response.start":
                headers = dict((k.lower(), v) for k, v in message.get("headers", []))
                streaming = headers.get(b"content-type", b"").startswith(b"text/event-stream")
            elif streaming and message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": scrub_events(message["body"], needles)}
            await send(message)

        return send_scrubbed
