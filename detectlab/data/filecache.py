"""Decoded files kept between calls that read the same file again.

A live slider (Robustness, Attack) re-scores one upload on every release; decoding the JPEG
again each time costs more than the degradation it shows. ``load_fitted_cached`` decodes as
``load_fitted`` does and keeps the result per *file version*: the resolved path, its
modification time in nanoseconds and its size in bytes, so a file rewritten in place (a new
upload under the same name) is decoded again, never served stale.

The tensors are shared between callers: treat them as read-only (copy before changing one).
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from detectlab.data.decode import load_fitted

#: versions kept: a few uploads at a few detector sizes (each a small tensor at the working size)
KEPT = 16


def file_version(path: str | Path) -> tuple[str, int, int]:
    """(resolved path, mtime in ns, size in bytes): what changes when the file does."""
    p = Path(path).resolve()
    st = p.stat()
    return str(p), st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=KEPT)
def _fitted(path: str, mtime_ns: int, nbytes: int, size: int, headroom: int,
            name: str) -> tuple[torch.Tensor, tuple[int, int]]:
    return load_fitted(path, size, headroom=headroom, name=name)


def load_fitted_cached(path: str | Path, size: int, *, headroom: int = 2,
                       name: str | None = None) -> tuple[torch.Tensor, tuple[int, int]]:
    """``load_fitted(path, size, headroom=headroom, name=name)``, decoded once per file version (see the module
    docstring). Errors are ``load_fitted``'s, naming ``name`` (default: the file's name); they are not cached."""
    try:
        key = file_version(path)
    except OSError:
        return load_fitted(path, size, headroom=headroom, name=name)  # its error names the file
    return _fitted(*key, int(size), int(headroom), name or Path(path).name)


def clear() -> None:
    """Forget every decoded file (tests; a process that must release the memory)."""
    _fitted.cache_clear()
