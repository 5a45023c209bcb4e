"""First start: the demo's synthetic and manipulated images are derived from the committed
generator weights (minutes on 2 cores). ``launch`` starts that in a background thread; a banner
above the tabs shows its progress as one bar over the whole derivation, with the time left
extrapolated from the rate measured so far, and disappears when it is done; the tabs that do not
need the demo (Detect, Localize uploads, Attack uploads) work meanwhile.

When it is done, the page's pickers of demo content get the new content without a reload:
``on_demo_ready`` runs a handler in every page built before the demo was there
(``common.refresh_on_open`` pickers are hooked up by it automatically).

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
import weakref
from dataclasses import dataclass, field
from typing import Callable

import gradio as gr
from gradio.context import Context

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
    #: the fraction done over the whole derivation; never decreases, whatever a report says
    fraction: float = 0.0
    #: (time, fraction) of the first report: the rate is measured from there (waiting for the lock excluded)
    _first: tuple[float, float] | None = field(default=None, repr=False)

    def __call__(self, done: float, total: float | None = None, desc: str = "") -> None:
        """A DetectLab progress sink: ``done`` of ``total`` units of the whole derivation."""
        now = time.monotonic()
        with self._lock:
            self.done, self.total, self.stage = float(done), float(total or 0), desc or self.stage
            if self.total > 0:
                self.fraction = max(self.fraction, min(1.0, self.done / self.total))
            if self._first is None:
                self._first = (now, self.fraction)

    @property
    def running(self) -> bool:
        return self.started is not None and self.finished is None

    @property
    def ready(self) -> bool:
        """The derivation ended and left the demo in place (not failed, not cancelled)."""
        return self.finished is not None and self.error is None and not self.cancelled

    def seconds_left(self, now: float | None = None) -> float | None:
        """The time left at the rate measured so far (fraction per second since the first report); None
        until 2 s of progress were measured."""
        now = time.monotonic() if now is None else now
        with self._lock:
            first, fraction = self._first, self.fraction
        if first is None or now - first[0] < 2.0 or fraction <= first[1]:
            return None
        rate = (fraction - first[1]) / (now - first[0])
        return (1.0 - fraction) / rate

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
        now = time.monotonic()
        with self._lock:
            fraction, stage = self.fraction, self.stage
        elapsed = now - (self.started or now)
        left = self.seconds_left(now)
        eta = (f"about {_duration(left)} left at the rate measured so far" if left is not None
               else "measuring the rate to estimate the time left")
        return (f"<div id='first-run'><b>First start: deriving the demo images from the committed generator "
                f"weights</b> ({_duration(elapsed)} so far; {eta}). {html.escape(stage)} "
                f"<progress value='{1000 * fraction:.0f}' max='1000' style='width: 40%'></progress> "
                f"<span id='first-run-percent'>{100 * fraction:.0f} %</span><br>Detect works now; the demo "
                "images appear in the Localize, Data, Train, Fingerprints, Robustness and Attack tabs when this "
                "is done, without reloading the page.</div>")


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


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


def demo_ready() -> bool:
    """True unless this process's first-start derivation is running, failed or was cancelled."""
    prep = _current
    return prep is None or prep.ready


def tick():
    """Timer handler: the banner while the preparation runs; hidden, and the timer stopped, once it is over;
    and whether the demo is ready (the page's ``demo_ready`` state: its change runs ``on_demo_ready``)."""
    prep = _current
    text = prep.banner() if prep is not None else ""
    active = prep is not None and prep.running
    return gr.update(value=text, visible=bool(text)), gr.Timer(active=active), demo_ready()


#: Blocks -> its page's ``demo_ready`` state (False in a page built while the demo was not there yet).
_ready_states: "weakref.WeakKeyDictionary[gr.Blocks, gr.State]" = weakref.WeakKeyDictionary()


def build() -> None:
    """The banner, its timer and the page's ``demo_ready`` state.

    The timer runs when the page was built before the demo was ready: in a page loaded while the
    derivation runs it updates the banner every second, in one loaded after it ended it ticks once.
    Either way the tick that sees the demo ready flips ``demo_ready`` to True, which runs every
    ``on_demo_ready`` handler in that browser page."""
    prep = _current
    text = prep.banner() if prep is not None else ""
    banner = gr.HTML(text, visible=bool(text), elem_id="first-run-banner")
    built_ready = prep is None or prep.ready
    ready = gr.State(built_ready)
    timer = gr.Timer(1.0, active=not built_ready)
    timer.tick(tick, None, [banner, timer, ready], api_name=False, show_progress="hidden")
    if Context.root_block is not None and not built_ready:
        _ready_states[Context.root_block] = ready


def on_demo_ready(fn: Callable, outputs, inputs=None) -> None:
    """Run ``fn(*inputs) -> outputs`` in each browser page once the first-start derivation has finished
    (for pickers and views of demo content). Does nothing where the demo was there when the page was
    built, or outside a Blocks that called ``build``. Call it inside the Blocks, after ``build``."""
    ready = _ready_states.get(Context.root_block) if Context.root_block is not None else None
    if ready is None:
        return
    # the state only ever turns False -> True (a derivation is not restarted), so a change means "ready"
    ready.change(fn, inputs, outputs, api_name=False, show_progress="hidden")
