"""Executes one stored training run; used by the app's worker process and by the CLI.

``python -m detectlab.runs.worker DB RUN_ID`` runs in its own process, so a crash or an
out-of-memory kill cannot take the server down; progress, epochs, the checkpoint and the
outcome go to the run database, and cancellation is a flag the worker polls there.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path

from detectlab.progress import CancelToken
from detectlab.runs.store import RunStore
from detectlab.train.layout import RunLayout


class StoreCancelToken(CancelToken):
    """Cancelled when the run's flag is set in the database (polled at most twice a second)."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        super().__init__()
        self._store, self._run_id, self._last = store, run_id, 0.0

    @property
    def cancelled(self) -> bool:
        now = time.monotonic()
        if not super().cancelled and now - self._last > 0.5:
            self._last = now
            if self._store.cancel_requested(self._run_id):
                self.cancel()
        return super().cancelled

    def check(self) -> None:
        if self.cancelled:
            super().check()


class StoreProgress:
    """Writes (step, total, stage) to the run row, at most every 0.3 s and at stage changes."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self._store, self._run_id, self._last, self._stage = store, run_id, 0.0, None

    def __call__(self, done: float, total: float | None = None, desc: str = "") -> None:
        now = time.monotonic()
        if desc != self._stage or now - self._last > 0.3 or (total and done >= total):
            self._store.set_progress(self._run_id, int(done), int(total or 0), desc)
            self._last, self._stage = now, desc


def execute_run(store: RunStore, run_id: str, runs_dir: Path, progress=None, on_epoch=None):
    """Run ``run_id`` to its end and record the outcome; returns the ``TrainResult``.

    ``progress`` and ``on_epoch`` are optional extra sinks (the CLI prints through them).
    ``runs_dir`` is the runs folder (see ``detectlab.train.layout``).
    """
    from detectlab.train import TrainConfig, train

    record = store.get(run_id)
    store.mark_running(run_id, os.getpid())
    layout = RunLayout(Path(runs_dir))
    try:
        cfg = TrainConfig.from_dict(record.config)
        cfg.out_dir = str(layout.root)
        ckpt = layout.checkpoint(run_id, 0, cfg.runs)  # the first repeat's: the one the run reports

        store_progress = StoreProgress(store, run_id)

        def both_progress(done, total=None, desc=""):
            store_progress(done, total, desc)
            if progress:
                progress(done, total, desc)

        def record_epoch(entry: dict) -> None:
            store.add_epoch(run_id, entry["epoch"], entry)
            if ckpt.exists():
                store.set_checkpoint(run_id, str(ckpt))
            if on_epoch:
                on_epoch(entry)

        result = train(cfg, progress=both_progress, cancel=StoreCancelToken(store, run_id),
                       on_epoch=record_epoch, run_id=run_id)
        first = result.runs[0]
        status = "cancelled" if any(r.status == "cancelled" for r in result.runs) else "finished"
        summary = {"test": first.test, "val": first.val, "best_epoch": first.best_epoch,
                   "images_per_second": first.images_per_second, "seconds": sum(r.seconds for r in result.runs),
                   "weights": first.weights, "notes": first.notes, "runs": len(result.runs),
                   "mean_std": result.summary if len(result.runs) > 1 else None}
        store.finish(run_id, status, summary, checkpoint=first.checkpoint)
        return result
    except BaseException as exc:  # noqa: BLE001 - every failure is recorded, then re-raised for the exit code
        reason = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        store.finish(run_id, "failed", {"traceback": traceback.format_exc()[-4000:]},
                     checkpoint=str(saved) if (saved := layout.saved_checkpoint(run_id)) else None, error=reason)
        raise


def main(argv: list[str] | None = None) -> int:
    from detectlab.config import set_offline_env

    set_offline_env()
    db, run_id, runs_dir = (argv or sys.argv[1:])[:3]
    try:
        execute_run(RunStore(db), run_id, Path(runs_dir))
    except Exception:  # noqa: BLE001 - already recorded in the store
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
