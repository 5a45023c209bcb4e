"""First start: the demo's synthetic and manipulated images are derived from the committed
generator weights (about a minute on 2 cores). ``launch`` starts that in a background thread;
a banner above the tabs shows its progress as a bar and disappears when it is done, and the
tabs that do not need the demo (Detect, Localize uploads, Attack uploads) work meanwhile.

The derivation takes the demo lock (``detectlab.demo.build.demo_lock``) like every other entry
point: if ``detectlab demo materialize`` (or another server) is deriving already, the banner
says so and the thread waits for it. ``stop`` cancels the derivation (it checks between
batches of images), so a server asked to stop exits within seconds, leaving no half-made folder.
"""

from __future__ import annotations

import html
import inspect
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import gradio as gr

from detectlab.progress import CancelToken, Cancelled


@dataclass
class Preparation:
    """Progress of one background derivation of the demo images."""

    done: float = 0.0
    total: float = 0.0
    stage: str = ""
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    cancelled: bool = False
    thread: threading.Thread | None = field(default=None, repr=False)
    cancel: CancelToken = field(default_factory=CancelToken, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, done: float, total: float | None = None, desc: str = "") -> None:
        """A DetectLab progress sink."""
        with self._lock:
            self.done, self.total, self.stage = float(done), float(total or 0), desc or self.stage

    @property
    def running(self) -> bool:
        return self.started is not None and self.finished is None

    def waiting(self, text: str) -> None:
        """``on_wait`` of the demo lock: another derivation runs; the banner says so."""
        with self._lock:
            self.stage = f"Waiting: {text}."

    def run(self, work: Callable[..., object]) -> None:
        self.started = self.started or time.monotonic()
        try:
            params = inspect.signature(work).parameters
            extra = {k: v for k, v in (("cancel", self.cancel), ("on_wait", self.waiting)) if k in params}
            work(progress=self, **extra)
        except Cancelled:
            self.cancelled = True
        except Exception as exc:  # noqa: BLE001 - shown in the banner; the tabs still serve
            self.error = str(exc) or type(exc).__name__
        finally:
            self.finished = time.monotonic()

    def stop(self, timeout: float = 10.0) -> bool:
        """Cancel the derivation and wait up to ``timeout`` s for its thread; True when it has ended."""
        self.cancel.cancel()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout)
            return not self.thread.is_alive()
        return True

    def banner(self) -> str:
        """The banner's HTML: a progress bar while running, the error if it failed, nothing when done."""
        if self.cancelled:
            return ""
        if self.error:
            return (f"<div id='first-run-error'><b>The demo images could not be derived:</b> {html.escape(self.error)}. "
                    "Run <code>detectlab demo materialize</code> in a terminal to see why.</div>")
        if not self.running:
            return ""
        with self._lock:
            done, total, stage = self.done, self.total, self.stage
        pct = 100.0 * done / total if total else 0.0
        elapsed = time.monotonic() - (self.started or time.monotonic())
        return (f"<div id='first-run'><b>First start: deriving the demo images from the committed generator "
                f"weights</b> (about a minute on 2 cores; {elapsed:.0f} s so far). {html.escape(stage)} "
                f"{int(done)}/{int(total)} "
                f"<progress value='{done:.0f}' max='{max(total, 1):.0f}' style='width: 40%'></progress> "
                f"{pct:.0f} %<br>Detect works now; the demo sets in the Data, Train, Fingerprints, Robustness "
                "and Attack tabs appear when this is done (their pickers read the sets when opened).</div>")


#: The process's preparation (one per server process); None when the demo was ready at start.
_current: Preparation | None = None


def start_in_background(work: Callable[..., object] | None = None) -> Preparation | None:
    """Derive the demo images in a daemon thread unless they are already there; returns the preparation."""
    global _current
    from detectlab.demo.build import ensure_demo, is_materialized

    if work is None and is_materialized():
        return None
    prep = Preparation()
    _current = prep
    prep.started = time.monotonic()  # running from now on, before the thread is scheduled
    prep.thread = threading.Thread(target=prep.run, args=(work or ensure_demo,), name="detectlab-demo", daemon=True)
    prep.thread.start()
    return prep


def stop(timeout: float = 10.0) -> bool:
    """Cancel this process's background derivation, if one runs (for the server's shutdown); True when
    no derivation thread is left running after ``timeout`` s."""
    prep = _current
    return prep.stop(timeout) if prep is not None else True


def tick():
    """Timer handler: the banner while the preparation runs; hidden, and the timer stopped, once it is over."""
    prep = _current
    text = prep.banner() if prep is not None else ""
    active = prep is not None and prep.running
    return gr.update(value=text, visible=bool(text)), gr.Timer(active=active)


def build() -> None:
    """The banner and its timer (active only while a preparation runs when the page loads)."""
    prep = _current
    text = prep.banner() if prep is not None else ""
    banner = gr.HTML(text, visible=bool(text), elem_id="first-run-banner")
    timer = gr.Timer(1.0, active=prep is not None and prep.running)
    timer.tick(tick, None, [banner, timer], api_name=False, show_progress="hidden")
