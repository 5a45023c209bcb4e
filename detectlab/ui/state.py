"""Process-wide app state: the run manager and the detector catalogue every tab picks from."""

from __future__ import annotations

import threading
from pathlib import Path

from detectlab import config

_lock = threading.Lock()
_manager = None


def manager():
    """The app's ``RunManager`` (created on first use, one per process)."""
    global _manager
    with _lock:
        if _manager is None:
            from detectlab.runs import RunManager

            _manager = RunManager(config.home())
        return _manager


def shutdown() -> None:
    global _manager
    with _lock:
        if _manager is not None:
            _manager.close()
            _manager = None


def detector_choices() -> dict[str, str]:
    """Label -> checkpoint path: the shipped defaults first, then every run's checkpoint."""
    from detectlab.models.checkpoint import shipped_checkpoints

    out = {f"shipped: {name}": str(path) for name, path in shipped_checkpoints().items()}
    out.update(manager().checkpoints())
    return out


def resolve_detector(label: str) -> Path:
    from detectlab.errors import CheckpointError

    choices = detector_choices()
    if label not in choices:
        raise CheckpointError(f"detector '{label}' is not available (refresh the list)")
    return Path(choices[label])
