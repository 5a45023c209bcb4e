"""The shipped checkpoints' manifest (``checkpoints/manifest.json``): its one reader and writer.

Each entry that names a ``file`` pins its SHA-256 (written by ``update_manifest``); loading a
shipped checkpoint checks the pin first (``verify_pin``), so a corrupted or swapped file is
refused with its name — before a pickled ``.pt`` is ever unpickled — instead of scoring with
weights nobody measured.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from pathlib import Path

from detectlab import config
from detectlab.errors import CheckpointError

#: How pickers label a shipped checkpoint ("shipped: cnn-resnet18"); names without it are accepted too.
SHIPPED_PREFIX = "shipped: "


def shipped_name(label: str) -> str:
    """A picker's label without the shipped prefix ("shipped: cnn-resnet18" -> "cnn-resnet18"); any other
    text as it is."""
    return label.removeprefix(SHIPPED_PREFIX)


def manifest_path() -> Path:
    return config.CHECKPOINT_DIR / "manifest.json"


def read_manifest() -> dict:
    """``checkpoints/manifest.json`` (``{"checkpoints": {name: entry}}``), empty when absent."""
    path = manifest_path()
    if not path.exists():
        return {"checkpoints": {}}
    data = json.loads(path.read_text())
    data.setdefault("checkpoints", {})
    return data


_manifest_lock = threading.Lock()


def update_manifest(name: str, entry: dict, section: str = "checkpoints") -> dict:
    """Set one entry of the manifest, re-reading the file right before writing it.

    Several builds may run at once (a CNN, a localizer); each one re-reads under an
    exclusive file lock so none overwrites another's entry.
    """
    import fcntl

    path = manifest_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _manifest_lock, open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = read_manifest()
        if entry.get("file") and (config.CHECKPOINT_DIR / entry["file"]).is_file():
            entry = {**entry, "sha256": file_sha256(config.CHECKPOINT_DIR / entry["file"])}
        data.setdefault(section, {})[name] = entry
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)
    return data


def shipped_checkpoints() -> dict[str, Path]:
    """The default detectors in the manifest whose file exists: name -> file."""
    entries = read_manifest()["checkpoints"]
    out = {}
    for name, e in entries.items():
        path = config.CHECKPOINT_DIR / e["file"]
        if path.exists() and path.suffix == ".safetensors":
            out[name] = path
    return out


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, hashed once per (path, size, modification time)."""
    st = Path(path).stat()
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pinned_sha256(path: str | Path) -> str | None:
    """The SHA-256 the manifest pins for a file of the checkpoints folder (any section), or None."""
    path = Path(path).resolve()
    if path.parent != config.CHECKPOINT_DIR.resolve():
        return None
    for section in read_manifest().values():
        for entry in section.values() if isinstance(section, dict) else ():
            if isinstance(entry, dict) and entry.get("file") == path.name and entry.get("sha256"):
                return entry["sha256"]
    return None


def verify_pin(path: str | Path) -> None:
    """Refuse a shipped checkpoint whose bytes differ from the manifest's pin (files without a pin pass)."""
    pinned = pinned_sha256(path)
    if pinned is not None and file_sha256(path) != pinned:
        raise CheckpointError(
            f"{Path(path).name}: its SHA-256 does not match the one checkpoints/manifest.json pins — the file is "
            "corrupted or was replaced; restore it (git checkout -- checkpoints/) or rebuild it "
            "(detectlab checkpoints build)")
