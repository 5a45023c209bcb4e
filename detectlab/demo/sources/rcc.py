"""Reading Qt resource (``.rcc``) bundles without Qt: gcompris packs its pictures in them."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from detectlab.demo.sources.errors import SourcesError


@dataclass(frozen=True)
class RccEntry:
    """One file inside a Qt ``.rcc`` bundle."""

    path: str
    """Resource path, e.g. ``/gcompris/src/activities/x/resource/y.webp``."""
    compression: str
    """``""``, ``"zlib"`` or ``"zstd"``."""
    data: bytes | None
    """Uncompressed bytes; ``None`` for zstd entries when ``zstandard`` is unavailable."""


def read_rcc(path: Path) -> Iterator[RccEntry]:
    """Yield every file of a binary Qt resource bundle (``rcc -binary`` output).

    gcompris ships its pictures inside such bundles; Qt is not needed to read them.
    Layout (all integers big-endian; see Qt's ``qresource.cpp``):

    * header: ``b"qres"``, version (u32), tree offset, data offset, names offset (u32
      each); version >= 3 adds a u32 of feature flags. Offsets are from file start.
    * tree: fixed-size entries, node ``i`` at ``tree + i * size`` with size 14 (version
      1) or 22 (version >= 2: an 8-byte modification time at the end). Each entry:
      name offset (u32), flags (u16: 2 = directory, 1 = zlib, 4 = zstd), then for a
      directory child count (u32) and index of the first child node (u32), for a file
      country (u16), language (u16) and data offset (u32). Node 0 is the root.
    * data: at ``data + offset``, a u32 length then the bytes. zlib entries hold Qt's
      ``qCompress`` format: a u32 uncompressed length, then a zlib stream.
    * names: at ``names + offset``, a u16 length in UTF-16 units, a u32 hash, then the
      name in UTF-16BE.

    zstd entries (Qt >= 5.13 can write them) are decompressed with the optional
    ``zstandard`` module; without it they are yielded with ``data=None`` so callers
    can report what was skipped.
    """
    buf = Path(path).read_bytes()
    if buf[:4] != b"qres":
        raise SourcesError(f"{path}: not a Qt resource bundle (no 'qres' magic)")
    version, tree, data, names = struct.unpack_from(">4I", buf, 4)
    entry_size = 14 if version < 2 else 22
    try:
        import zstandard  # type: ignore[import-not-found]
    except ImportError:
        zstandard = None

    def name_at(offset: int) -> str:
        (length,) = struct.unpack_from(">H", buf, names + offset)
        start = names + offset + 6
        return buf[start : start + 2 * length].decode("utf-16-be")

    stack = [(0, "")]
    while stack:
        node, prefix = stack.pop()
        base = tree + node * entry_size
        name_off, flags = struct.unpack_from(">IH", buf, base)
        path_here = f"{prefix}/{name_at(name_off)}" if node else ""
        if flags & 2:
            count, first = struct.unpack_from(">II", buf, base + 6)
            stack.extend((child, path_here) for child in reversed(range(first, first + count)))
            continue
        (data_off,) = struct.unpack_from(">I", buf, base + 10)
        (length,) = struct.unpack_from(">I", buf, data + data_off)
        raw = buf[data + data_off + 4 : data + data_off + 4 + length]
        if flags & 1:
            yield RccEntry(path_here, "zlib", zlib.decompress(raw[4:]))
        elif flags & 4:
            payload = zstandard.ZstdDecompressor().decompress(raw) if zstandard else None
            yield RccEntry(path_here, "zstd", payload)
        else:
            yield RccEntry(path_here, "", raw)
