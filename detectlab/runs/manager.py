"""Queues training runs and executes them one at a time in worker processes.

The app owns one ``RunManager``, created when the app starts (``detectlab.ui.state.start``),
not when a tab is first opened. A watcher thread starts the oldest queued run when no run is
executing, and notices a worker that died (killed, out of memory, crashed): the run is
marked failed with the reason, its finished epochs and best checkpoint stay, and the next
queued run starts normally.

The queue is the store's, shared with ``detectlab train``: a run starts only through
``RunStore.claim`` (atomic: nothing running, no older run waiting), which the manager calls
before it spawns a worker and a terminal's ``detectlab train`` calls before it trains. A
worker left by an app that died, or a ``detectlab train`` in a terminal, is adopted — the
queue waits for it, its own outcome is kept, and if it dies without one the heartbeat
reaper marks it failed. A run queued by a terminal is never spawned here: its terminal
executes it when its turn comes (or it is reaped when that terminal is gone). So never two
runs execute at once, whoever starts them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from detectlab.runs.store import ACTIVE, RunRecord, RunStore
from detectlab.train.layout import RunLayout, new_run_id, runs_db


def validate_run_config(config: dict) -> dict:
    """Refuse bad settings before queueing (detector runs: ``TrainConfig``; localizers: ``LocalizerConfig``);
    returns the settings as validated (numbers as int/float, every field present), as JSON."""
    import json
    from dataclasses import asdict

    from detectlab.train.config import TrainConfigError

    if not isinstance(config, dict):
        raise TrainConfigError(f"a run config is a table of settings, got {type(config).__name__}")
    if config.get("runner"):  # a job that names the module running it (an experiment): it checks its own settings
        checked = job_runner(config).validate(config)
    elif config.get("kind") == "localizer":
        from detectlab.localize import LocalizerConfig

        checked = {"kind": "localizer", **asdict(LocalizerConfig.from_dict(config))}
    else:
        from detectlab.train import TrainConfig

        checked = TrainConfig.from_dict(config).to_dict()
    return json.loads(json.dumps(checked))


def job_runner(config: dict):
    """The module that runs a job (``config["runner"]``): a DetectLab module with ``validate(config)`` and
    ``execute(config, out_dir, progress, cancel)``. The queue names no job kinds itself, so the packages
    above it (experiments) can queue work without the queue depending on them."""
    import importlib

    from detectlab.train.config import TrainConfigError

    name = str(config.get("runner", ""))
    parts = name.split(".")
    if len(parts) < 2 or parts[0] != "detectlab" or not all(part.isidentifier() for part in parts):
        raise TrainConfigError(f"a job's runner must be a DetectLab module, got {name[:80]!r}")
    try:
        module = importlib.import_module(name)
    except ImportError:
        raise TrainConfigError(f"no module {name} to run this job") from None
    if not (callable(getattr(module, "validate", None)) and callable(getattr(module, "execute", None))):
        raise TrainConfigError(f"{name} cannot run jobs (it has no validate and execute)")
    return module


#: Seconds a running worker has to stop after a cancel before it is terminated: it checks the flag at least
#: every step (and every few images while decoding or extracting features), so this only catches one stuck
#: in a long operation; either way the run ends "cancelled" within about 5 s of the request.
CANCEL_GRACE_SECONDS = 4.0


def describe_exit(code: int) -> str:
    if code < 0:
        sig = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        hint = " — killed (out of memory, or stopped from outside)" if -code == signal.SIGKILL else ""
        return f"worker process ended by signal {sig}{hint}"
    return f"worker process exited with code {code}"


class RunManager:
    """Submit, cancel and watch runs; state lives in the ``RunStore``."""

    def __init__(self, home: Path, poll_seconds: float = 0.5) -> None:
        self.home = Path(home)
        self.layout = RunLayout.default(self.home)
        self.runs_dir = self.layout.root
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.store = RunStore(runs_db(self.home))
        self.store.adopt_queued(os.getpid())  # an earlier app's queued runs are this app's to start
        self.poll_seconds = poll_seconds
        self._proc: subprocess.Popen | None = None
        self._proc_run: str | None = None
        self._cancel_sent: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="detectlab-runs", daemon=True)
        self._thread.start()

    # -- public -------------------------------------------------------------------------
    def submit(self, config: dict, name: str = "") -> RunRecord:
        """Queue a run (it starts when no other run is executing); ``config["kind"] == "localizer"`` for a localizer."""
        from detectlab.train.config import check_name

        config = validate_run_config(config)  # refuse bad settings now, not in the worker
        record = self.store.create(new_run_id(), config, check_name(name, "run name"), owner="app")
        self._tick()
        return record

    def identical(self, config: dict) -> RunRecord | None:
        """The newest queued, running or finished run that trains exactly ``config`` (its name aside), or None;
        ``config`` is validated as ``submit`` would."""
        return self.store.identical(validate_run_config(config))

    def cancel(self, run_id: str) -> None:
        """Queued runs end at once; a running one stops at its next step (terminated after
        ``CANCEL_GRACE_SECONDS``; it ends "cancelled" either way)."""
        record = self.store.get(run_id)
        if record.status == "queued":
            self.store.finish(run_id, "cancelled", error="cancelled before it started")
        elif record.status == "running":
            self.store.request_cancel(run_id)
            self._cancel_sent[run_id] = time.monotonic()

    def delete(self, run_id: str) -> RunRecord:
        """Remove an ended run: its history rows, its run folder and log (a localizer's checkpoint too)."""
        record = self.store.delete(run_id)
        shutil.rmtree(self.layout.run_dir(run_id), ignore_errors=True)
        self.layout.log(run_id).unlink(missing_ok=True)
        if record.kind == "localizer" and record.checkpoint:
            ckpt = Path(record.checkpoint)
            for path in (ckpt, ckpt.with_suffix(".json")):
                path.unlink(missing_ok=True)
        return record

    def checkpoints(self) -> dict[str, str]:
        """Finished (or cancelled / failed with a best model) runs' checkpoints: label -> path."""
        return {label: str(path) for label, path in self.store.checkpoints().items()}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    # -- internals ----------------------------------------------------------------------
    def _spawn(self, record: RunRecord) -> None:
        log = open(self.layout.log(record.id), "ab")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "detectlab.runs.worker", str(self.store.path), record.id, str(self.runs_dir)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=os.environ.copy())
        log.close()
        self._proc_run = record.id

    def worker_pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    def _tick(self) -> None:
        with self._lock:
            if self._proc is not None:
                code = self._proc.poll()
                run_id = self._proc_run
                if code is None:
                    self._terminate_if_cancel_ignored(run_id, self._proc.pid)
                    return
                self._proc, self._proc_run = None, None
                self._cancel_sent.pop(run_id, None)
                record = self.store.get(run_id)
                if record.status in ACTIVE:
                    # a single run's model.safetensors, or run0/'s for repeated runs
                    ckpt = self.layout.saved_checkpoint(run_id)
                    if record.cancel:  # stopped after a cancel (terminated here when it did not stop in time)
                        self.store.finish(run_id, "cancelled", checkpoint=str(ckpt) if ckpt else None,
                                          error=f"cancelled; its worker was stopped ({describe_exit(code)})")
                    else:
                        self.store.finish(run_id, "failed", checkpoint=str(ckpt) if ckpt else None,
                                          error=describe_exit(code))
            self.store.reap()
            adopted = self.store.running()  # a worker of an earlier app, or a `detectlab train`
            if adopted:
                for record in adopted:
                    self._terminate_if_cancel_ignored(record.id, record.pid)
                return
            nxt = self.store.next_queued()
            if nxt is None or nxt.from_terminal:
                return  # a terminal's run: its `detectlab train` claims it (or is reaped when it is gone)
            if not self.store.claim(nxt.id, os.getpid(), claimant="app"):
                return  # someone else's turn came first (a terminal claimed in between)
            try:
                self._spawn(nxt)
            except Exception as exc:  # noqa: BLE001 - no worker: the claimed run must not stay running
                self.store.finish(nxt.id, "failed", error=f"its worker process could not start: {exc}")
                return
            self.store.take_over(nxt.id, self._proc.pid)

    def _terminate_if_cancel_ignored(self, run_id: str, pid: int | None) -> None:
        sent = self._cancel_sent.get(run_id)
        if sent and pid and time.monotonic() - sent > CANCEL_GRACE_SECONDS:
            try:
                os.kill(pid, signal.SIGTERM if time.monotonic() - sent < CANCEL_GRACE_SECONDS + 3 else signal.SIGKILL)
            except OSError:
                pass

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception:  # noqa: BLE001 - the watcher must survive a bad row or a busy database
                pass
            self._stop.wait(self.poll_seconds)
