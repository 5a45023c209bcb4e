"""Process-wide app state: the run manager and the detector catalogue every tab picks from."""

from __future__ import annotations

import threading

from detectlab import config

_lock = threading.Lock()
_manager = None


def start():
    """Create the app's ``RunManager`` now: its watcher starts queued runs and marks dead ones failed from the
    moment the app serves, not from the first visit to the Train tab. ``serve()`` calls it; returns it."""
    return manager()


def manager():
    """The app's ``RunManager`` (created by ``start`` or on first use, one per process)."""
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
    from detectlab.catalog import detector_choices as choices

    return {label: str(path) for label, path in choices().items()}
