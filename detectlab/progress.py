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


def phase_of(desc: str) -> str:
    """The phase a progress stage belongs to: its text without a trailing "(epoch k/n)" or "(draw k/n)".

    A training stage names its epoch ("train resnet18 (epoch 3/10)") while its step count runs
    across epochs; the phase ("train resnet18") is what a rate and an ETA are measured over.
    """
    text = desc.strip()
    if text.endswith(")") and "(" in text:
        head, _, tail = text.rpartition("(")
        if tail.startswith(("epoch ", "draw ")):
            return head.strip()
    return text


class PhaseClock:
    """Seconds left in the current phase, from the rate measured since the phase's first report.

    Each phase (``phase_of(desc)``) keeps the time and count of its first report; an ETA is
    ``elapsed / done_since_then * left``. A phase interrupted by another (training by a short
    validation) keeps its start, so the validation's share of the time counts in its rate. A
    phase restarts when its total changes or its count goes backwards (a second run).
    """

    def __init__(self) -> None:
        self._start: dict[str, tuple[float, float, float]] = {}  # phase -> (time, done, total) at its first report
        self._last: dict[str, float] = {}                          # phase -> its latest count

    def eta(self, done: float, total: float | None, desc: str, now: float) -> float | None:
        if not total:
            return None
        phase = phase_of(desc)
        start, last = self._start.get(phase), self._last.get(phase)
        self._last[phase] = done
        if start is None or start[2] != total or (last is not None and done < last):
            self._start[phase] = (now, done, total)
            return None
        t0, d0, _ = start
        if done - d0 <= 0 or now <= t0:
            return None
        return max(0.0, (now - t0) / (done - d0) * (total - done))
