"""One progress/cancellation interface for every long operation.

Long work (training, sweeps, demo builds) takes a ``Progress`` and a ``CancelToken``.
The CLI passes a tqdm-backed progress, the UI one that forwards to ``gr.Progress``;
library code never knows which.
"""

from __future__ import annotations

import threading
from typing import Protocol


class Cancelled(Exception):
    """Raised inside long work when its cancel token was set."""


class CancelToken:
    """A flag long work polls between steps; thread-safe."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise ``Cancelled`` if cancellation was requested."""
        if self._event.is_set():
            raise Cancelled("cancelled by user")


class Progress(Protocol):
    def __call__(self, done: float, total: float | None = None, desc: str = "") -> None:
        """Report ``done`` of ``total`` units of the current stage ``desc``."""


def null_progress(done: float, total: float | None = None, desc: str = "") -> None:
    """A progress sink that ignores everything."""


class TqdmProgress:
    """Progress rendered as one tqdm bar per stage (for the CLI)."""

    def __init__(self, disable: bool = False) -> None:
        self._bar = None
        self._desc = None
        self._disable = disable

    def __call__(self, done: float, total: float | None = None, desc: str = "") -> None:
        from tqdm.auto import tqdm

        if desc != self._desc or self._bar is None:
            self.close()
            self._bar = tqdm(total=total, desc=desc, disable=self._disable, dynamic_ncols=True)
            self._desc = desc
        if total is not None and self._bar.total != total:
            self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


NEVER_CANCEL = CancelToken()
