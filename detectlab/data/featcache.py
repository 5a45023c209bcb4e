"""The on-disk cache of frozen-backbone features, one for training, embeddings and experiments.

A frozen backbone's features of a file depend only on the backbone (architecture and weights), the input
size, the decoding (and a flip, say) and the file's bytes; they are worth keeping, since extracting them is
most of a linear probe's cost. One folder, ``DETECTLAB_HOME/cache/features``, holds one ``.pt`` tensor per
(backbone, extra settings, ordered file list): row k is file k. The key hashes every file's resolved path,
size and modification time, so a file rewritten under the same name (``demo materialize`` after a generator
change) is a miss, and two users of the same backbone over the same files in the same order share a file.

``size()`` and ``clear()`` are what the Data tab's "Feature cache" row and ``detectlab data cache`` show and do.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterable

import torch

from detectlab import config

__all__ = ["cache_dir", "clear", "describe", "files_state", "key", "load", "path_for", "save", "size"]

#: Folders earlier versions kept features in: counted by ``size`` and emptied by ``clear`` so nothing is orphaned.
LEGACY_DIRS = (("experiments", "features"),)


def cache_dir() -> Path:
    """Where the features live (``DETECTLAB_HOME/cache/features``)."""
    return config.home() / "cache" / "features"


def _dirs() -> list[Path]:
    base = config.home() / "cache"
    return [cache_dir(), *(base.joinpath(*parts) for parts in LEGACY_DIRS)]


def files_state(paths: Iterable[str | Path]) -> str:
    """SHA-256 (16 hex digits) of each file's resolved path, size and modification time, in order."""
    h = hashlib.sha256()
    for p in paths:
        p = os.path.realpath(p)
        try:
            st = os.stat(p)
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        except OSError:
            h.update(f"{p}|missing\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]


def key(backbone: str, paths: Iterable[str | Path], **settings) -> str:
    """The cache key of ``backbone``'s features of ``paths`` (in this order) under ``settings`` (input size,
    flip, ...): 24 hex digits. ``backbone`` names the weights too (e.g. ``"resnet50|imagenet"``, or a checkpoint
    file's path and modification time)."""
    text = json.dumps([backbone, files_state(paths), sorted(settings.items())], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def path_for(cache_key: str) -> Path:
    """The file of ``cache_key`` (it may not exist)."""
    return cache_dir() / f"{cache_key}.pt"


def load(cache_key: str, rows: int) -> torch.Tensor | None:
    """The cached features of ``cache_key`` when the file holds ``rows`` rows; None (a miss) otherwise,
    also for a broken file, which is then computed again."""
    path = path_for(cache_key)
    if not path.exists():
        return None
    try:
        values = torch.load(path, weights_only=True)
    except Exception:  # noqa: BLE001 - a broken cache file is a miss
        return None
    return values if isinstance(values, torch.Tensor) and values.shape[0] == rows else None


def save(cache_key: str, values: torch.Tensor) -> Path:
    """Keep ``values`` under ``cache_key`` (written to a temporary file first: a reader never sees half a file)."""
    path = path_for(cache_key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(values, tmp)
    tmp.replace(path)
    return path


def size() -> tuple[int, int]:
    """(bytes, files) the feature cache holds."""
    total = count = 0
    for d in _dirs():
        if not d.is_dir():
            continue
        for entry in os.scandir(d):
            if entry.is_file(follow_symlinks=False):
                try:
                    total += entry.stat(follow_symlinks=False).st_size
                    count += 1
                except OSError:
                    continue
    return total, count


def describe() -> str:
    """E.g. ``12.3 MB in 4 files``: the cache's size in words."""
    nbytes, files = size()
    return f"{nbytes / 1e6:,.1f} MB in {files} file{'s' if files != 1 else ''}"


def clear() -> tuple[int, int]:
    """Delete every cached feature file; returns the (bytes, files) freed. Features are recomputed on next use."""
    freed = size()
    for d in _dirs():
        shutil.rmtree(d, ignore_errors=True)
    return freed
