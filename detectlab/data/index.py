"""A cached index of a data set folder, so re-opening a 100k-image folder costs a listing, not a discovery.

``scan(root)`` walks the folder once with ``os.scandir`` (one ``stat`` per image file, no file opened) and
hashes every visible entry's relative path, and each image's size and modification time, into a key. The
index file, ``config.home()/cache/index/<hash of the resolved root>.json``, holds that key, what
``discover`` found under it (per variant: listed only, or validated at a pixel limit), and the probe result of
every file validated so far, by (size, modification time). A re-open whose key matches reads the stored
result; a folder with a file added, removed, renamed or touched gets a new key and is re-indexed, and only its
new or changed files are probed again.

JSON, not pickle: the index lives in a user-writable folder, and loading it must never run code.
A folder with a symbolic link to a folder inside is not cached (the listing would not see behind the link).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat as stat_mod
import time
from dataclasses import dataclass, field
from pathlib import Path

from detectlab import config
from detectlab.data.decode import IMAGE_EXTENSIONS

__all__ = ["Listing", "scan", "load", "store", "index_dir"]

#: Bumped when what ``discover`` stores changes shape or meaning: older index files are then misses.
INDEX_VERSION = 2
_STATTED = IMAGE_EXTENSIONS | {".json"}   # images, and manifest.json (its groups are in the result)
#: A file modified this recently may be modified again within the file system's timestamp granularity
#: (a few ms) without its mtime changing, so a listing holding one is not stored (git's "racy" rule).
RACY_NS = 2_000_000_000


def index_dir() -> Path:
    """Where index files live (``DETECTLAB_HOME/cache/index``)."""
    return config.home() / "cache" / "index"


@dataclass
class Listing:
    """A folder's listing: ``key`` (None when the folder cannot be cached) and each image's (size, mtime_ns)."""

    root: Path
    key: str | None
    stats: dict[str, tuple[int, int]] = field(default_factory=dict)   # relative path -> (size, mtime_ns)
    newest: int = 0   # the newest mtime_ns seen

    @property
    def racy(self) -> bool:
        """Whether a file changed so recently that a later change could keep its (size, mtime)."""
        return self.newest >= time.time_ns() - RACY_NS


def scan(root: Path, keep_stats: bool = True) -> Listing:
    """List ``root`` recursively (hidden entries skipped, as ``discover`` skips them) and hash the listing.

    ``keep_stats=False`` leaves ``stats`` empty (the key and ``newest`` are the same): a listing-only open needs no
    per-file record, and at 100k files the dict is ~25 MB of a short-lived peak.
    """
    h = hashlib.sha256(f"detectlab-index-v{INDEX_VERSION}\n".encode())
    stats: dict[str, tuple[int, int]] = {}
    newest = 0
    cacheable = True
    stack = [("", str(root))]
    while stack:
        rel, folder = stack.pop()
        # Lines are made as the entries come and sorted after: holding a folder's ``DirEntry`` objects to sort
        # them first cost ~580 bytes a file at the peak, a line costs ~100. One hash update per folder: 100k
        # small updates cost more than the stats.
        lines, subdirs = [f">{rel}"], []
        try:
            with os.scandir(folder) as it:
                for e in it:
                    name = e.name
                    if name[0] == "." or name == "__MACOSX":
                        continue
                    if e.is_symlink():
                        try:
                            target, st = os.readlink(e.path), os.stat(e.path)
                        except OSError:
                            lines.append(f"L|{name}|broken")
                            continue
                        if stat_mod.S_ISDIR(st.st_mode):
                            cacheable = False   # what lies behind it is not in this listing
                        lines.append(f"L|{name}|{target}|{st.st_size}|{st.st_mtime_ns}")
                    elif e.is_dir(follow_symlinks=False):
                        lines.append(f"D|{name}")
                        subdirs.append(name)
                        continue
                    elif "." + name.rpartition(".")[2].lower() in _STATTED:
                        try:
                            st = e.stat(follow_symlinks=False)
                        except OSError as exc:   # gone since the listing: decoding it will say so
                            lines.append(f"X|{name}|{exc.errno}")
                            continue
                        lines.append(f"F|{name}|{st.st_size}|{st.st_mtime_ns}")
                    else:   # a file no step reads: its name is enough
                        lines.append(f"O|{name}")
                        continue
                    newest = max(newest, st.st_mtime_ns)
                    if keep_stats:
                        stats[rel + name] = (st.st_size, st.st_mtime_ns)
        except OSError as exc:
            lines.append(f"!{exc.errno}")
        lines.sort()
        h.update(("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))
        stack += [(f"{rel}{name}/", os.path.join(folder, name)) for name in sorted(subdirs)]
    return Listing(root, h.hexdigest() if cacheable else None, stats, newest)


def _file(root: Path) -> Path:
    name = hashlib.sha256(str(root.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return index_dir() / f"{name}.json"


def _read(root: Path) -> dict:
    try:
        data = json.loads(_file(root).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) and data.get("version") == INDEX_VERSION else {}
    except (OSError, ValueError):   # missing or broken: a miss
        return {}


def load(listing: Listing, variant: str) -> tuple[dict | None, dict[str, list]]:
    """(the stored result of ``variant`` for this listing or None, the stored probes of ``variant``'s pixel limit).

    Probes are returned even on a miss: ``{relative path: [size, mtime_ns, result]}``, reusable for every file
    whose size and modification time are unchanged.
    """
    if listing.key is None:
        return None, {}
    data = _read(listing.root)
    probes = data.get("probes", {}).get(variant, {})
    if data.get("key") != listing.key:
        return None, probes if isinstance(probes, dict) else {}
    return data.get("results", {}).get(variant), probes


def store(listing: Listing, variant: str, result: dict, probes: dict[str, list] | None = None) -> None:
    """Keep ``result`` (and ``probes``) for ``variant`` under this listing's key; other variants of the same key
    stay, those of an older key go. Written atomically; a failure to write only costs the next open its speed."""
    if listing.key is None or listing.racy:
        return
    data = _read(listing.root)
    if data.get("key") != listing.key:
        data = {"version": INDEX_VERSION, "root": str(listing.root.resolve()), "key": listing.key, "results": {},
                "probes": data.get("probes", {})}
    data["results"][variant] = result
    if probes is not None:
        data["probes"][variant] = probes
    path = _file(listing.root)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass
