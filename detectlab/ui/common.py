"""Small helpers shared by the tabs: progress bridging and user-facing error messages."""

from __future__ import annotations

import html
import threading
import traceback

import gradio as gr

from detectlab.errors import DetectLabError
from detectlab.progress import CancelToken


class GradioProgress:
    """Adapts DetectLab's progress callback to ``gr.Progress``."""

    def __init__(self, progress: gr.Progress) -> None:
        self._progress = progress

    def __call__(self, done: float, total: float | None = None, desc: str = "") -> None:
        if total:
            self._progress((done, total), desc=desc, unit="steps")
        else:
            self._progress(0, desc=desc)


def error_markdown(exc: BaseException) -> str:
    """A clear one-paragraph message for a failed action; the server keeps running."""
    if isinstance(exc, DetectLabError):
        return f"**Error:** {html.escape(str(exc))}"
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return f"**Unexpected error** (the app keeps running): `{html.escape(detail)}`"


def refresh_on_open(dropdown: gr.Dropdown, choices) -> None:
    """Re-read a picker's choices whenever the user opens it (new data sets, runs and checkpoints
    appear without a restart), and once the first start has derived the demo images
    (``first_run.on_demo_ready``). Only the choices are sent, never the value, so a pick the user
    makes while the answer is on its way is not overwritten."""
    from detectlab.ui.first_run import on_demo_ready

    dropdown.focus(lambda: gr.update(choices=list(choices())), None, dropdown, api_name=False,
                   show_progress="hidden", queue=False)
    on_demo_ready(lambda: gr.update(choices=list(choices())), dropdown)


class SessionJobs:
    """One running job per browser session (a sweep, an experiment): ``start`` hands the job its cancel
    token, ``cancel`` sets the newest one of the caller's session. Thread-safe; one per tab."""

    def __init__(self) -> None:
        self._tokens: dict[str, CancelToken] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _session(request: gr.Request | None) -> str:
        return getattr(request, "session_hash", None) or "-"

    def start(self, request: gr.Request | None) -> CancelToken:
        token = CancelToken()
        with self._lock:
            self._tokens[self._session(request)] = token
        return token

    def cancel(self, request: gr.Request | None) -> bool:
        """Cancel the session's job; False when it has none."""
        with self._lock:
            token = self._tokens.get(self._session(request))
        if token is None:
            return False
        token.cancel()
        return True
