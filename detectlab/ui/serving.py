"""What the app's HTTP server may send back from the data roots: raster images only.

Gradio serves files under ``allowed_paths`` at ``/gradio_api/file=<path>``; the data roots
must be there so galleries can show data-set images without copying them. A data set is
user content, though: a stored ``.html`` or ``.svg`` served inline from the app's origin
would run script in the user's session. Zip imports already drop such files; this guard
makes sure nothing but a raster image ever leaves a data root, whatever put it there.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from detectlab import config
from detectlab.data.decode import IMAGE_EXTENSIONS

_FILE_ROUTE = "/file="


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
            return await self.app(scope, receive, send)

        async def send_nosniff(message):
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-content-type-options"]
                message = {**message, "headers": [*headers, (b"x-content-type-options", b"nosniff")]}
            await send(message)

        return await self.app(scope, receive, send_nosniff)
