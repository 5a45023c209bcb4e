"""The shipped checkpoints' manifest (``checkpoints/manifest.json``): its one reader and writer."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from detectlab import config

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
