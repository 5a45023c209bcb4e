"""Uploads that arrive as streams (a REST request's multipart files), kept as files while one request uses them.

The decoder and the capabilities read files, and their messages name a file by its path; an upload is
therefore stored under the name its client gave it (base name only, one folder per upload so two uploads
may share a name), and a message's path reduces to that name. The folder goes when the request ends.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

#: Longest stored name: file systems refuse more than 255 bytes, and a name is only a label here.
MAX_NAME_CHARS = 120


def upload_name(name: str | None, index: int) -> str:
    """A client's file name as a safe base name: no folders, no NUL, not ``.`` or ``..``, not over-long
    (the extension kept); ``image-<index>`` when nothing is left."""
    base = Path((name or "").replace("\0", "").replace("\\", "/")).name.strip()
    if base in ("", ".", ".."):
        return f"image-{index}"
    if len(base) > MAX_NAME_CHARS:
        suffix = Path(base).suffix[:16]
        base = base[: MAX_NAME_CHARS - len(suffix)] + suffix
    return base


@contextmanager
def staged_uploads(uploads: Iterable[tuple[str | None, BinaryIO]], root: str | Path) -> Iterator[list[Path]]:
    """The ``(name, stream)`` uploads written to files under a fresh folder in ``root``, in order; removed on exit."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rest-", dir=root) as tmp:
        paths = []
        for i, (name, stream) in enumerate(uploads):
            path = Path(tmp, str(i), upload_name(name, i))
            path.parent.mkdir()
            stream.seek(0)
            with path.open("wb") as fh:
                shutil.copyfileobj(stream, fh, 1 << 20)
            paths.append(path)
        yield paths
