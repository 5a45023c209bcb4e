"""Run history in an embedded SQLite database that outlives the app.

Tables: ``runs`` (config, status, progress, result, checkpoint, error, worker pid, host and
heartbeat) and ``epochs`` (one row of metrics per finished epoch). The app, its worker processes
and the CLI share the file; WAL mode lets the UI read while a worker writes, and every write is
one short transaction so a killed process never leaves a half-written row.

One queue, shared by the app and the CLI: a run executes only after ``claim`` — one
``BEGIN IMMEDIATE`` transaction that succeeds only when no run is ``running`` and no older
queued run is still waiting for its turn — so two runs never execute at once, whoever starts
them. Each run has an ``owner``: ``app`` (queued through the app; its manager claims it and
spawns a worker) or ``cli`` (queued by a ``detectlab train`` in a terminal, which waits, claims
it and executes it in its own process; the app never starts it).

A run is executed by one process (the app's worker or ``detectlab train``) that beats a
heartbeat every few seconds. Opening the store (every CLI command, every app start) and the
app's watcher reap runs left ``running`` whose process is gone (checked by pid on this host)
or whose heartbeat stopped: they end ``failed`` with that reason, so a killed run never stays
``running``. A terminal's queued run whose ``detectlab train`` is gone is reaped too (ended
``cancelled``), so it cannot hold the queue.

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
    eta         REAL,                      -- seconds left in the training stage, as the worker measures it
    owner       TEXT,                      -- app | cli: who executes it (NULL in older databases: app)
    owner_pid   INTEGER,                   -- the process that queued it (the app server, or detectlab train)
    owner_host  TEXT
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
    owner: str | None = None
    owner_pid: int | None = None
    owner_host: str | None = None

    @property
    def kind(self) -> str:
        """``detector``, ``localizer``, or the kind a job run names (``experiment``)."""
        if self.config.get("runner"):
            return str(self.config.get("kind") or "job")
        return "localizer" if self.config.get("kind") == "localizer" else "detector"

    @property
    def label(self) -> str:
        """How pickers show this run: id, name, architecture, status and its headline test metric."""
        what = (f"{self.config.get('arch')} localizer" if self.kind == "localizer" else
                self.config.get("experiment", self.kind) if self.config.get("runner") else self.config.get("arch"))
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
    def from_terminal(self) -> bool:
        """Queued by ``detectlab train``: that process executes it, never the app's worker."""
        return self.owner == "cli"

    def owner_gone(self, now: float | None = None) -> str | None:
        """Why a terminal's queued run has no ``detectlab train`` waiting for it any more (None while it has)."""
        if self.status != "queued" or not self.from_terminal:
            return None
        now = time.time() if now is None else now
        if self.owner_host == socket.gethostname() and self.owner_pid and not pid_alive(self.owner_pid):
            return f"its `detectlab train` process (pid {self.owner_pid}) ended before the run could start"
        last = self.heartbeat or self.created
        if now - last > heartbeat_timeout():
            return (f"no sign of life from its `detectlab train` process (pid {self.owner_pid}) for "
                    f"{now - last:.0f} s while it waited")
        return None

    def waits_for_its_turn(self, claimant: str) -> bool:
        """A queued run that a live party will start: it goes before any younger run ``claimant`` wants to start.

        A terminal's run counts while its ``detectlab train`` is alive; an app's run counts when the
        claimant is the app (it starts them oldest first) or when the app that queued it still runs
        (with no app serving, ``detectlab train`` does not wait for app runs nobody will start)."""
        if self.status != "queued":
            return False
        if self.from_terminal:
            return self.owner_gone() is None
        if claimant == "app" or not self.owner_pid:
            return claimant == "app"
        return self.owner_host != socket.gethostname() or pid_alive(self.owner_pid)

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
            for column, kind in (("host", "TEXT"), ("heartbeat", "REAL"), ("eta", "REAL"), ("owner", "TEXT"),
                                 ("owner_pid", "INTEGER"), ("owner_host", "TEXT")):  # databases of earlier versions
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
    def create(self, run_id: str, config: dict, name: str = "", owner: str = "app",
               owner_pid: int | None = None) -> RunRecord:
        """Queue a run. ``owner``: ``app`` (the app's manager starts it) or ``cli`` (the ``detectlab train``
        process ``owner_pid``, default this one, claims and executes it itself)."""
        if owner not in ("app", "cli"):
            raise ValueError(f"owner must be 'app' or 'cli', got {owner!r}")
        now = time.time()
        self._exec("INSERT INTO runs (id, name, status, config, created, heartbeat, owner, owner_pid, owner_host) "
                   "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
                   (run_id, name, json.dumps(config), now, now, owner, owner_pid or os.getpid(),
                    socket.gethostname()))
        return self.get(run_id)

    def claim(self, run_id: str, pid: int, claimant: str = "app") -> bool:
        """Start ``run_id`` if it is its turn: atomically (one ``BEGIN IMMEDIATE`` transaction) mark it
        ``running`` for process ``pid`` if it is queued, no run is running and no older queued run is
        waiting for its turn (see ``RunRecord.waits_for_its_turn``). True if this call started it.

        The one way a run starts, for the app's manager (``claimant="app"``) and for ``detectlab train``
        (``"cli"``): never two runs executing at once. Reap dead runs first (``reap``), or a killed
        process's run keeps the queue waiting until the next reap.
        """
        with self._conn() as c:
            c.execute("BEGIN IMMEDIATE")
            try:
                if self._blocker(c, run_id, claimant) is not False:
                    c.execute("ROLLBACK")
                    return False
                now = time.time()
                c.execute("UPDATE runs SET status='running', started=?, pid=?, host=?, heartbeat=? WHERE id=?",
                          (now, pid, socket.gethostname(), now, run_id))
                c.execute("COMMIT")
                return True
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise

    def blocker(self, run_id: str, claimant: str = "app") -> RunRecord | None:
        """The run ``run_id`` waits for: the one running, else the oldest older queued run whose turn comes
        first; None when nothing is in its way (or it is not queued)."""
        with self._conn() as c:
            found = self._blocker(c, run_id, claimant)
        return found or None

    def _blocker(self, c: sqlite3.Connection, run_id: str, claimant: str) -> RunRecord | None | bool:
        """What keeps ``run_id`` from starting now: a record, None if ``run_id`` is not queued (or gone),
        False if nothing does."""
        row = c.execute("SELECT rowid, created, status FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None or row["status"] != "queued":
            return None
        running = c.execute("SELECT * FROM runs WHERE status='running' ORDER BY started LIMIT 1").fetchone()
        if running is not None:
            return self._record(running)
        older = c.execute("SELECT * FROM runs WHERE status='queued' AND (created < ? OR (created = ? AND rowid < ?)) "
                          "ORDER BY created, rowid", (row["created"], row["created"], row["rowid"])).fetchall()
        for r in older:
            record = self._record(r)
            if record.waits_for_its_turn(claimant):
                return record
        return False

    def take_over(self, run_id: str, pid: int) -> bool:
        """Process ``pid`` (the worker the app spawned, or ``detectlab train``) executes the claimed run
        ``run_id`` from now on: its pid and a fresh heartbeat. False if the run is no longer running
        (cancelled before its worker started)."""
        with self._conn() as c:
            c.execute("BEGIN IMMEDIATE")
            cur = c.execute("UPDATE runs SET pid=?, host=?, heartbeat=? WHERE id=? AND status='running'",
                            (pid, socket.gethostname(), time.time(), run_id))
            c.execute("COMMIT")
        return cur.rowcount == 1

    def adopt_queued(self, pid: int) -> None:
        """An app starting up takes over the app runs an earlier app left queued (they start in order)."""
        self._exec("UPDATE runs SET owner_pid=?, owner_host=? WHERE status='queued' AND COALESCE(owner, 'app')='app'",
                   (pid, socket.gethostname()))

    def mark_running(self, run_id: str, pid: int) -> None:
        """Force a run ``running`` for ``pid``, bypassing the queue (tests simulating a worker use it; runs
        start through ``claim``)."""
        now = time.time()
        self._exec("UPDATE runs SET status='running', started=?, pid=?, host=?, heartbeat=? WHERE id=?",
                   (now, pid, socket.gethostname(), now, run_id))

    def beat(self, run_id: str) -> None:
        """The executing (or, for ``detectlab train``, waiting) process is alive (see ``HEARTBEAT_SECONDS``)."""
        self._exec("UPDATE runs SET heartbeat=? WHERE id=? AND status IN ('queued', 'running')",
                   (time.time(), run_id))

    def reap(self) -> list[str]:
        """End every ``running`` run whose process is gone as ``failed`` (``cancelled`` if a cancel was requested), and
    every terminal's queued run whose
        ``detectlab train`` is gone as ``cancelled``, each with the reason; returns their ids."""
        reaped = []
        for record in self.running():
            reason = record.worker_gone()
            if reason:
                ckpt = record.checkpoint if record.checkpoint and Path(record.checkpoint).exists() else None
                if record.cancel:  # a cancel was asked for: the process stopping is what it asked
                    self.finish(record.id, "cancelled", checkpoint=ckpt, error=f"cancelled; {reason}")
                else:
                    self.finish(record.id, "failed", checkpoint=ckpt, error=f"worker stopped: {reason}")
                reaped.append(record.id)
        with self._conn() as c:
            rows = c.execute("SELECT * FROM runs WHERE status='queued' AND owner='cli'").fetchall()
        for record in map(self._record, rows):
            reason = record.owner_gone()
            if reason:
                self.finish(record.id, "cancelled", error=f"left the queue: {reason}")
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

    def update_result(self, run_id: str, items: dict) -> RunRecord:
        """Add ``items`` to an ended run's result (what was measured on it afterwards: calibration, held-out
        rates), in one transaction; returns the record."""
        with self._conn() as c:
            c.execute("BEGIN IMMEDIATE")
            row = c.execute("SELECT result FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is None:
                c.execute("ROLLBACK")
                raise KeyError(f"no run {run_id!r}")
            result = (json.loads(row["result"]) if row["result"] else {}) | items
            c.execute("UPDATE runs SET result=? WHERE id=?", (json.dumps(result), run_id))
            c.execute("COMMIT")
        return self.get(run_id)

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

    def identical(self, config: dict, statuses: tuple[str, ...] = ("queued", "running", "finished")) -> RunRecord | None:
        """The newest run in ``statuses`` that trains exactly ``config`` (same settings, same data set, same
        seed; its name aside), or None. ``config`` as stored: validated, JSON-shaped."""
        want = {k: v for k, v in config.items() if k != "name"}
        for record in self.list(limit=1000):
            if record.status in statuses and {k: v for k, v in record.config.items() if k != "name"} == want:
                return record
        return None

    def cancel_requested(self, run_id: str) -> bool:
        with self._conn() as c:
            row = c.execute("SELECT cancel FROM runs WHERE id=?", (run_id,)).fetchone()
        return bool(row and row["cancel"])

    def checkpoints(self) -> dict[str, Path]:
        """Detector runs whose checkpoint can be picked (finished, or cancelled / failed with a best model).

        Label -> file; localizer runs are not detectors and are not listed."""
        return {r.label: r.usable_checkpoint for r in self.list() if r.usable_checkpoint}

    def next_queued(self) -> RunRecord | None:
        """The oldest queued run (whoever owns it)."""
        with self._conn() as c:
            row = c.execute("SELECT * FROM runs WHERE status='queued' ORDER BY created, rowid LIMIT 1").fetchone()
        return self._record(row) if row else None

    def integrity_ok(self) -> bool:
        with self._conn() as c:
            return c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
