"""Run history in an embedded SQLite database that outlives the app.

Tables: ``runs`` (config, status, progress, result, checkpoint, error, worker pid) and
``epochs`` (one row of metrics per finished epoch). The app and the worker processes share
the file; WAL mode lets the UI read while a worker writes, and every write is one short
transaction so a killed process never leaves a half-written row.
"""

from __future__ import annotations

import json
import sqlite3
import time
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
    error       TEXT
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id  TEXT NOT NULL REFERENCES runs(id),
    epoch   INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
"""

ACTIVE = ("queued", "running")
ENDED = ("finished", "cancelled", "failed")


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

    @property
    def label(self) -> str:
        """How detector pickers show this run: id, name, architecture, status and test accuracy."""
        acc = (self.result.get("test") or {}).get("accuracy") if isinstance(self.result, dict) else None
        text = f"run {self.id}{' ' + self.name if self.name else ''} ({self.config.get('arch')}, {self.status}"
        return text + (f", test acc {acc:.3f})" if isinstance(acc, float) else ")")

    @property
    def usable_checkpoint(self) -> Path | None:
        """The run's checkpoint when it can be picked as a detector (ended, file on disk, safetensors)."""
        if self.status in ENDED and self.checkpoint and Path(self.checkpoint).suffix == ".safetensors" \
                and Path(self.checkpoint).exists():
            return Path(self.checkpoint)
        return None

    @property
    def eta_seconds(self) -> float | None:
        if self.status != "running" or not self.started or self.step <= 0 or self.total <= 0:
            return None
        elapsed = time.time() - self.started
        return elapsed * (self.total - self.step) / self.step


class RunStore:
    """All access to the run database goes through here."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._conn() as c:
            c.executescript(SCHEMA)

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
        self._exec("UPDATE runs SET status='running', started=?, pid=? WHERE id=?", (time.time(), pid, run_id))

    def set_progress(self, run_id: str, step: int, total: int, stage: str) -> None:
        self._exec("UPDATE runs SET step=?, total=?, stage=? WHERE id=?", (int(step), int(total), stage, run_id))

    def add_epoch(self, run_id: str, epoch: int, metrics: dict) -> None:
        self._exec("INSERT OR REPLACE INTO epochs (run_id, epoch, metrics) VALUES (?, ?, ?)",
                   (run_id, epoch, json.dumps(metrics)))

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
        """run id -> (finished epochs, best validation balanced accuracy), in one query."""
        with self._conn() as c:
            rows = c.execute("SELECT run_id, COUNT(*), MAX(json_extract(metrics, '$.val_balanced_accuracy')) "
                             "FROM epochs GROUP BY run_id").fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    def cancel_requested(self, run_id: str) -> bool:
        with self._conn() as c:
            row = c.execute("SELECT cancel FROM runs WHERE id=?", (run_id,)).fetchone()
        return bool(row and row["cancel"])

    def checkpoints(self) -> dict[str, Path]:
        """Runs whose checkpoint can be picked (finished, or cancelled / failed with a best model): label -> file."""
        return {r.label: r.usable_checkpoint for r in self.list() if r.usable_checkpoint}

    def next_queued(self) -> RunRecord | None:
        with self._conn() as c:
            row = c.execute("SELECT * FROM runs WHERE status='queued' ORDER BY created LIMIT 1").fetchone()
        return self._record(row) if row else None

    def integrity_ok(self) -> bool:
        with self._conn() as c:
            return c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
