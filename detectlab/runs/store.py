"""Run history in an embedded SQLite database that outlives the app.

Tables: ``runs`` (config, status, progress, result, checkpoint, error, worker pid, host and
heartbeat) and ``epochs`` (one row of metrics per finished epoch). The app, its worker processes
and the CLI share the file; WAL mode lets the UI read while a worker writes, and every write is
one short transaction so a killed process never leaves a half-written row.

A run is executed by one process (the app's worker or ``detectlab train``) that beats a
heartbeat every few seconds. Opening the store (every CLI command, every app start) and the
app's watcher reap runs left ``running`` whose process is gone (checked by pid on this host)
or whose heartbeat stopped: they end ``failed`` with that reason, so a killed run never stays
``running``.

Two kinds of runs share the history: detectors (``TrainConfig``) and localizers
(``LocalizerConfig``, config key ``kind: "localizer"``); detector pickers list only the former.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from typing import Callable, TypeVar

T = TypeVar("T")
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL,             -- queued | running | finished | cancelled | failed
    config      TEXT NOT NULL,             -- TrainConfig as JSON
    created     REAL NOT NULL,
    started     REAL,
    finished    REAL,
    pid         INTEGER,
    cancel      INTEGER NOT NULL DEFAULT 0,
    step        INTEGER NOT NULL DEFAULT 0,
    total       INTEGER NOT NULL DEFAULT 0,
    stage       TEXT NOT NULL DEFAULT '',
    checkpoint  TEXT,
    result      TEXT,                      -- test metrics etc. as JSON
    error       TEXT,
    host        TEXT,                      -- machine of the process executing the run
    heartbeat   REAL,                      -- last sign of life of that process
    eta         REAL                       -- seconds left in the training stage, as the worker measures it
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id  TEXT NOT NULL REFERENCES runs(id),
    epoch   INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS steps (          -- training loss as it comes (mean over a few steps)
    run_id  TEXT NOT NULL REFERENCES runs(id),
    step    INTEGER NOT NULL,
    epoch   REAL NOT NULL,                  -- fractional: 1.5 = half-way through the second epoch
    loss    REAL NOT NULL,
    PRIMARY KEY (run_id, step)
);
"""

ACTIVE = ("queued", "running")
ENDED = ("finished", "cancelled", "failed")
#: Seconds between heartbeats of the process executing a run.
HEARTBEAT_SECONDS = 5.0


def heartbeat_timeout() -> float:
    """Seconds without a heartbeat after which a running run counts as dead (env DETECTLAB_HEARTBEAT_TIMEOUT)."""
    return float(os.environ.get("DETECTLAB_HEARTBEAT_TIMEOUT", 45))


def pid_alive(pid: int | None) -> bool:
    """True if process ``pid`` exists on this machine and is not a zombie."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


@dataclass
class RunRecord:
    id: str
    name: str
    status: str
    config: dict
    created: float
    started: float | None = None
    finished: float | None = None
    pid: int | None = None
    cancel: bool = False
    step: int = 0
    total: int = 0
    stage: str = ""
    checkpoint: str | None = None
    result: dict = field(default_factory=dict)
    error: str | None = None
    host: str | None = None
    heartbeat: float | None = None
    eta: float | None = None

    @property
    def kind(self) -> str:
        """``detector`` or ``localizer``."""
        return "localizer" if self.config.get("kind") == "localizer" else "detector"

    @property
    def label(self) -> str:
        """How pickers show this run: id, name, architecture, status and its headline test metric."""
        what = f"{self.config.get('arch')} localizer" if self.kind == "localizer" else self.config.get("arch")
        text = f"run {self.id}{' ' + self.name if self.name else ''} ({what}, {self.status}"
        metric, value = self.headline
        return text + (f", {metric} {value:.3f})" if isinstance(value, float) else ")")

    @property
    def usable_checkpoint(self) -> Path | None:
        """The run's checkpoint when it can be picked as a detector (ended, file on disk, safetensors)."""
        if self.kind == "detector" and self.status in ENDED and self.checkpoint \
                and Path(self.checkpoint).suffix == ".safetensors" and Path(self.checkpoint).exists():
            return Path(self.checkpoint)
        return None

    @property
    def headline(self) -> tuple[str, float | None]:
        """The run's main test metric: accuracy (detectors), mAP50 (YOLO localizers) or pixel dice (U-Net)."""
        test = (self.result.get("test") or {}) if isinstance(self.result, dict) else {}
        if self.kind == "detector":
            return "test acc", test.get("accuracy")
        if "map50" in test:
            return "mAP50", test.get("map50")
        return "dice", (test.get("pixel") or {}).get("dice")

    def worker_gone(self, now: float | None = None) -> str | None:
        """Why a ``running`` run has no live process (None while it has one, or if it is not running)."""
        if self.status != "running":
            return None
        now = time.time() if now is None else now
        if self.host == socket.gethostname() and self.pid and not pid_alive(self.pid):
            return f"its process (pid {self.pid}) ended without recording an outcome (killed or crashed)"
        last = self.heartbeat or self.started
        if last is not None and now - last > heartbeat_timeout():
            return f"no heartbeat from its process (pid {self.pid}) for {now - last:.0f} s (stopped or hung)"
        return None

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left in the training stage (None before training steps have a measured rate)."""
        return self.eta if self.status == "running" else None


class RunStore:
    """All access to the run database goes through here."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._conn() as c:
            c.executescript(SCHEMA)
            have = {row[1] for row in c.execute("PRAGMA table_info(runs)")}
            for column, kind in (("host", "TEXT"), ("heartbeat", "REAL"), ("eta", "REAL")):  # databases of earlier versions
                if column not in have:
                    c.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
        self.reap()

    @contextmanager
    def _conn(self):
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.row_factory = sqlite3.Row
            yield conn
        finally:
            conn.close()

    def _exec(self, sql: str, args: tuple = ()) -> None:
        with self._conn() as c:
            c.execute("BEGIN IMMEDIATE")
            c.execute(sql, args)
            c.execute("COMMIT")

    @staticmethod
    def _record(row: sqlite3.Row) -> RunRecord:
        d = dict(row)
        d["config"] = json.loads(d["config"])
        d["result"] = json.loads(d["result"]) if d["result"] else {}
        d["cancel"] = bool(d["cancel"])
        return RunRecord(**d)

    # -- writes -------------------------------------------------------------------------
    def create(self, run_id: str, config: dict, name: str = "") -> RunRecord:
        self._exec("INSERT INTO runs (id, name, status, config, created) VALUES (?, ?, 'queued', ?, ?)",
                   (run_id, name, json.dumps(config), time.time()))
        return self.get(run_id)

    def mark_running(self, run_id: str, pid: int) -> None:
        now = time.time()
        self._exec("UPDATE runs SET status='running', started=?, pid=?, host=?, heartbeat=? WHERE id=?",
                   (now, pid, socket.gethostname(), now, run_id))

    def beat(self, run_id: str) -> None:
        """The executing process is alive (see ``HEARTBEAT_SECONDS``)."""
        self._exec("UPDATE runs SET heartbeat=? WHERE id=? AND status='running'", (time.time(), run_id))

    def reap(self) -> list[str]:
        """End every ``running`` run whose process is gone as ``failed`` with the reason; returns their ids."""
        reaped = []
        for record in self.running():
            reason = record.worker_gone()
            if reason:
                ckpt = record.checkpoint if record.checkpoint and Path(record.checkpoint).exists() else None
                self.finish(record.id, "failed", checkpoint=ckpt, error=f"worker stopped: {reason}")
                reaped.append(record.id)
        return reaped

    def delete(self, run_id: str) -> RunRecord:
        """Remove an ended run from the history (its files are the caller's to remove); returns it."""
        record = self.get(run_id)
        if record.status not in ENDED:
            raise ValueError(f"run {run_id} is {record.status}; cancel it before deleting it")
        with self._conn() as c:
            c.execute("BEGIN IMMEDIATE")
            c.execute("DELETE FROM epochs WHERE run_id=?", (run_id,))
            c.execute("DELETE FROM steps WHERE run_id=?", (run_id,))
            c.execute("DELETE FROM runs WHERE id=?", (run_id,))
            c.execute("COMMIT")
        return record

    def set_progress(self, run_id: str, step: int, total: int, stage: str, eta: float | None = None) -> None:
        self._exec("UPDATE runs SET step=?, total=?, stage=?, eta=? WHERE id=?",
                   (int(step), int(total), stage, eta, run_id))

    def add_epoch(self, run_id: str, epoch: int, metrics: dict) -> None:
        self._exec("INSERT OR REPLACE INTO epochs (run_id, epoch, metrics) VALUES (?, ?, ?)",
                   (run_id, epoch, json.dumps(metrics)))

    def add_steps(self, run_id: str, rows: list[tuple[int, float, float]]) -> None:
        """Record (step, fractional epoch, loss) rows of a run's training loss."""
        with self._conn() as c:
            c.execute("BEGIN IMMEDIATE")
            c.executemany("INSERT OR REPLACE INTO steps (run_id, step, epoch, loss) VALUES (?, ?, ?, ?)",
                          [(run_id, int(s), float(e), float(v)) for s, e, v in rows])
            c.execute("COMMIT")

    def steps(self, run_id: str, max_points: int = 2000) -> list[tuple[int, float, float]]:
        """(step, fractional epoch, loss) of a run, thinned evenly to at most ``max_points`` rows."""
        with self._conn() as c:
            n = c.execute("SELECT COUNT(*) FROM steps WHERE run_id=?", (run_id,)).fetchone()[0]
            every = max(1, -(-n // max_points))
            rows = c.execute("SELECT step, epoch, loss FROM (SELECT step, epoch, loss, ROW_NUMBER() OVER "
                             "(ORDER BY step) AS k FROM steps WHERE run_id=?) WHERE (k - 1) % ? = 0 ORDER BY step",
                             (run_id, every)).fetchall()
        return [tuple(r) for r in rows]

    def set_checkpoint(self, run_id: str, path: str) -> None:
        self._exec("UPDATE runs SET checkpoint=? WHERE id=?", (path, run_id))

    def finish(self, run_id: str, status: str, result: dict | None = None, checkpoint: str | None = None,
               error: str | None = None) -> None:
        """End a run once; a run already ended keeps its first outcome."""
        self._exec("UPDATE runs SET status=?, finished=?, result=?, checkpoint=COALESCE(?, checkpoint), error=? "
                   "WHERE id=? AND status IN ('queued', 'running')",
                   (status, time.time(), json.dumps(result or {}), checkpoint, error, run_id))

    def request_cancel(self, run_id: str) -> None:
        self._exec("UPDATE runs SET cancel=1 WHERE id=?", (run_id,))

    # -- reads --------------------------------------------------------------------------
    def get(self, run_id: str) -> RunRecord:
        with self._conn() as c:
            row = c.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"no run {run_id!r}")
        return self._record(row)

    def list(self, limit: int = 200) -> list[RunRecord]:
        with self._conn() as c:
            rows = c.execute("SELECT * FROM runs ORDER BY created DESC LIMIT ?", (limit,)).fetchall()
        return [self._record(r) for r in rows]

    def epochs(self, run_id: str) -> list[dict]:
        with self._conn() as c:
            rows = c.execute("SELECT metrics FROM epochs WHERE run_id=? ORDER BY epoch", (run_id,)).fetchall()
        return [json.loads(r["metrics"]) for r in rows]

    def epoch_summaries(self) -> dict[str, tuple[int, float | None]]:
        """run id -> (finished epochs, best validation score), in one query.

        The score is the balanced accuracy for detectors, mask mAP50 for YOLO localizers and
        pixel dice for the U-Net (whichever the epoch rows carry)."""
        with self._conn() as c:
            rows = c.execute("SELECT run_id, COUNT(*), MAX(COALESCE(json_extract(metrics, '$.val_balanced_accuracy'), "
                             "json_extract(metrics, '$.\"metrics/mAP50(M)\"'), json_extract(metrics, '$.val_dice'))) "
                             "FROM epochs GROUP BY run_id").fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    def running(self) -> list[RunRecord]:
        with self._conn() as c:
            rows = c.execute("SELECT * FROM runs WHERE status='running' ORDER BY started").fetchall()
        return [self._record(r) for r in rows]

    def wait_until(self, until: Callable[[], T], timeout: float, what: str = "", poll: float = 0.1) -> T:
        """Block until ``until()`` returns something truthy; return it.

        ``until`` is evaluated again only when the database changed (SQLite's ``data_version``),
        so waiting costs nothing while nothing happens. Raises ``TimeoutError`` naming ``what``.
        """
        deadline = time.monotonic() + timeout
        with self._conn() as c:
            seen = None
            while True:
                version = c.execute("PRAGMA data_version").fetchone()[0]
                if version != seen:
                    seen = version
                    if result := until():
                        return result
                if time.monotonic() > deadline:
                    raise TimeoutError(f"after {timeout:.0f} s: {what() if callable(what) else what}")
                time.sleep(poll)

    def wait_for(self, run_id: str, until: Callable[[RunRecord], bool], timeout: float) -> RunRecord:
        """Block until ``until(record)`` holds for run ``run_id``; returns the record (see ``wait_until``)."""

        def ready():
            record = self.get(run_id)
            return record if until(record) else None

        def state():
            r = self.get(run_id)
            return f"run {run_id}: {r.status}, {r.stage} {r.step}/{r.total}, error {r.error}"

        return self.wait_until(ready, timeout, state)

    def cancel_requested(self, run_id: str) -> bool:
        with self._conn() as c:
            row = c.execute("SELECT cancel FROM runs WHERE id=?", (run_id,)).fetchone()
        return bool(row and row["cancel"])

    def checkpoints(self) -> dict[str, Path]:
        """Detector runs whose checkpoint can be picked (finished, or cancelled / failed with a best model).

        Label -> file; localizer runs are not detectors and are not listed."""
        return {r.label: r.usable_checkpoint for r in self.list() if r.usable_checkpoint}

    def next_queued(self) -> RunRecord | None:
        with self._conn() as c:
            row = c.execute("SELECT * FROM runs WHERE status='queued' ORDER BY created LIMIT 1").fetchone()
        return self._record(row) if row else None

    def integrity_ok(self) -> bool:
        with self._conn() as c:
            return c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
