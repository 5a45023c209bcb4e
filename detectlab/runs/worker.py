"""Executes one stored training run; used by the app's worker process and by the CLI.

``python -m detectlab.runs.worker DB RUN_ID`` runs in its own process, so a crash or an
out-of-memory kill cannot take the server down; progress, epochs, the checkpoint and the
outcome go to the run database, and cancellation is a flag the worker polls there. While a
run executes, a heartbeat thread marks it alive (see ``detectlab.runs.store``).

A run's config is a ``TrainConfig`` (a detector) or, with ``kind: "localizer"``, a
``LocalizerConfig`` (a YOLOv8-seg or U-Net localizer): same process, progress, cancel,
per-epoch history and failure handling. A user's ``.pt`` to start a localizer from, ticked
*trusted*, is unpickled here (as the user the app runs as), never in the app's server.

A detector run with ``processes > 1`` (or a ``Launch`` over several machines) is data-parallel:
this process stays the run's owner (pid, heartbeat, the outcome of a failure) and starts the ranks
through torchrun's elastic agent, each ``python -m detectlab.runs.worker --rank DB RUN_ID RUNS_DIR``.
Rank 0 writes progress, epochs, steps, the checkpoint and a finished or cancelled outcome, as a
single process would; the other ranks write nothing. A rank that dies fails the run with the agent's
report (which rank, its pid, the signal or exit code, the error), once.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from detectlab import config
from detectlab.errors import DetectLabError
from detectlab.progress import CancelToken
from detectlab.runs.store import HEARTBEAT_SECONDS, RunStore
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
    """Writes (step, total, stage, ETA) to the run row, at most every 0.3 s and at stage changes.

    Every phase gets an ETA (``detectlab.progress.PhaseClock``): decoding, feature extraction,
    training and evaluation alike. Training stages name their epoch ("train resnet18 (epoch 2/5)")
    while their step count runs across epochs: the rate is measured from the phase's first step,
    so the ETA does not jump when a new epoch or a short validation starts.
    """

    def __init__(self, store: RunStore, run_id: str) -> None:
        from detectlab.progress import PhaseClock

        self._store, self._run_id, self._last, self._stage = store, run_id, 0.0, None
        self._clock = PhaseClock()
        self._seen: tuple[float, str] | None = None   # time and stage of the latest report
        self.phase_seconds: dict[str, float] = {}      # coarse phase (``coarse_phase``) -> seconds spent in it

    def eta(self, done: float, total: float | None, desc: str, now: float) -> float | None:
        return self._clock.eta(done, total, desc, now)

    def _count(self, now: float) -> None:
        if self._seen is not None:  # the time since the latest report belongs to that report's phase
            phase = coarse_phase(self._seen[1])
            self.phase_seconds[phase] = self.phase_seconds.get(phase, 0.0) + now - self._seen[0]

    def stop(self) -> dict[str, float]:
        """End the timing (the latest report's phase runs until now); returns ``phase_seconds``."""
        self._count(time.monotonic())
        self._seen = None
        return self.phase_seconds

    def __call__(self, done: float, total: float | None = None, desc: str = "") -> None:
        now = time.monotonic()
        self._count(now)
        self._seen = (now, desc)
        eta = self.eta(done, total, desc, now)
        if desc != self._stage or now - self._last > 0.3 or (total and done >= total):
            self._store.set_progress(self._run_id, int(done), int(total or 0), desc, eta)
            self._last, self._stage = now, desc


#: First word of a progress stage -> the phase a run's timing table names.
_PHASES = {"checking": "check files", "decode": "decode", "extract": "extract features", "train": "train",
           "training": "train", "validate": "validate", "score": "evaluate", "fit": "train"}


def coarse_phase(stage: str) -> str:
    """The phase of a progress stage: decode, extract features, train, validate, evaluate (or the stage itself)."""
    word = stage.strip().split(" ", 1)[0].lower() if stage.strip() else ""
    return _PHASES.get(word, stage.strip() or "start")


class StepLosses:
    """Collects per-step training losses and writes their mean every ``every`` seconds (one row per write)."""

    def __init__(self, store: RunStore, run_id: str, every: float = 0.5) -> None:
        self._store, self._run_id, self._every = store, run_id, every
        self._pending: list[tuple[int, float, float]] = []
        self._last = time.monotonic()

    def __call__(self, entry: dict) -> None:
        self._pending.append((int(entry["step"]), float(entry["epoch"]), float(entry["loss"])))
        if time.monotonic() - self._last >= self._every:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            rows = self._pending
            step, epoch = rows[-1][0], rows[-1][1]
            self._store.add_steps(self._run_id, [(step, epoch, sum(r[2] for r in rows) / len(rows))])
            self._pending = []
        self._last = time.monotonic()


@contextmanager
def heartbeat(store: RunStore, run_id: str, every: float = HEARTBEAT_SECONDS):
    """Beat ``run_id``'s heartbeat from a background thread while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            try:
                store.beat(run_id)
            except Exception:  # noqa: BLE001 - a busy database skips one beat; the timeout allows many
                pass

    thread = threading.Thread(target=beat, name=f"heartbeat-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every + 1)


class NotItsTurn(DetectLabError):
    """A queued run cannot start now: another run is executing, or an older one waits first."""


def execute_run(store: RunStore, run_id: str, runs_dir: Path, progress=None, on_epoch=None, launch=None):
    """Run ``run_id`` to its end and record the outcome; returns the ``TrainResult`` (a dict for localizers),
    or None if the run ended (was cancelled) before it could start here.

    The run must have been claimed (``RunStore.claim``: the app's manager does before it spawns
    this worker, ``detectlab train`` when its turn comes); a run still queued is claimed here
    and refused with ``NotItsTurn`` if another run is executing. This process takes the run
    over (its pid, its heartbeat). ``progress`` and ``on_epoch`` are optional extra sinks (the
    CLI prints through them). ``runs_dir`` is the runs folder (see ``detectlab.train.layout``).
    ``launch`` (``distributed.Launch``) spreads a detector run over several processes or machines; by
    default the run's ``processes`` on this machine. A distributed run returns its ended ``RunRecord``.
    """
    record = store.get(run_id)
    if record.status == "queued":
        store.reap()
        if not store.claim(run_id, os.getpid(), claimant="cli" if record.from_terminal else "app"):
            blocker = store.blocker(run_id, "cli" if record.from_terminal else "app")
            raise NotItsTurn(f"run {run_id} cannot start now: run {blocker.id if blocker else '?'} "
                             f"({blocker.status if blocker else 'unknown'}) goes first; one run executes at a time")
    if not store.take_over(run_id, os.getpid()):
        return None  # cancelled (or reaped) before it started
    record = store.get(run_id)
    layout = RunLayout(Path(runs_dir))
    store_progress = StoreProgress(store, run_id)

    def both_progress(done, total=None, desc=""):
        store_progress(done, total, desc)
        if progress:
            progress(done, total, desc)

    with heartbeat(store, run_id):
        if record.config.get("runner"):
            return _execute_job(store, record, layout, both_progress, store_progress)
        if record.kind == "localizer":
            return _execute_localizer(store, record, both_progress, on_epoch)
        launch = launch or _local_launch(record.config)
        if launch is not None and launch.distributed:
            return _execute_ranks(store, record, layout, launch)
        return _execute_detector(store, record, layout, both_progress, on_epoch, store_progress)


def _local_launch(config: dict):
    """The launch of a run's own ``processes`` on this machine (None for one process)."""
    from detectlab.train.distributed import Launch

    n = config.get("processes", 1)
    return Launch(nproc_per_node=n) if isinstance(n, int) and n > 1 else None


def _execute_ranks(store: RunStore, record, layout: RunLayout, launch):
    """Start the run's ranks through torchrun and wait; record a failure (with the agent's report) or a run
    whose rank 0 ran on another machine. Returns the ended record."""
    from detectlab.runs.manager import describe_exit
    from detectlab.train import distributed

    run_id = record.id
    argv = ["-m", "detectlab.runs.worker", "--rank", str(store.path), run_id, str(layout.root)]
    try:
        distributed.run_ranks(launch, argv, run_id)
    except distributed.RanksFailed as exc:
        root, *others = exc.failures
        reason = (f"rank {root.rank} (pid {root.pid}): {describe_exit(root.exitcode).replace('worker process', 'its process')}"
                  + (f": {root.message}" if root.message and root.exitcode >= 0 else ""))
        stopped = ", ".join(f"rank {f.rank}" for f in others)
        ckpt = layout.saved_checkpoint(run_id)
        status = "cancelled" if store.cancel_requested(run_id) else "failed"
        store.finish(run_id, status, {"failures": [vars(f) for f in exc.failures], "processes": launch.nproc_per_node,
                                      "nodes": launch.nnodes},
                     checkpoint=str(ckpt) if ckpt else None,
                     error=f"{reason} — torchrun's elastic agent stopped the other ranks"
                           + (f" ({stopped})" if stopped else ""))
        raise
    except BaseException as exc:  # noqa: BLE001 - the agent itself failed, or this process was stopped
        if store.cancel_requested(run_id):
            ckpt = layout.saved_checkpoint(run_id)
            store.finish(run_id, "cancelled", checkpoint=str(ckpt) if ckpt else None, error="cancelled")
        else:
            _record_failure(store, run_id, exc, layout.saved_checkpoint(run_id))
        raise
    if store.get(run_id).status in ("queued", "running"):  # rank 0 was another machine's: its history has the run
        store.finish(run_id, "finished", {"notes": [f"ranks of a {launch.nnodes}-machine run ended well here; global "
                                                    "rank 0 ran on another machine, whose run history keeps its "
                                                    "epochs, results and checkpoint"]})
    return store.get(run_id)


def epoch_line(e: dict) -> str:
    """One epoch's row as the terminal prints it."""
    return (f"  epoch {e['epoch']}: train loss {e['train_loss'] or 0:.4f}  val loss {e['val_loss']:.4f}  "
            f"val acc {e['val_accuracy']:.3f}  val bal.acc {e['val_balanced_accuracy'] or 0:.3f}")


def _exit_with_parent(every: float = 1.0) -> None:
    """End this rank when its launcher is gone (SIGKILLed supervisor: its agent could not stop us)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def execute_rank(db: str, run_id: str, runs_dir: str) -> None:
    """One rank of a distributed run, in a process torchrun's agent started (its environment names the rank).

    Every rank reads the run's config from the store; rank 0 executes it as a single process would (the
    store's progress, epochs, steps, checkpoint and outcome), with the run's cancel flag; the other ranks
    train with no writes and no cancel flag of their own (rank 0 shares it at every step). A failure is not
    recorded here: the launcher records what the agent reports, once. The process group is not torn down
    (``main`` leaves with ``os._exit``)."""
    from detectlab.train import TrainConfig, distributed, train

    _exit_with_parent()
    store = RunStore(db)
    record = store.get(run_id)
    cfg = TrainConfig.from_dict(record.config)
    d, _ = distributed.init(cfg.device)
    layout = RunLayout(Path(runs_dir))
    if d.main:
        store_progress = StoreProgress(store, run_id)
        progress, on_epoch = store_progress, None
        if record.from_terminal:  # `detectlab train` in a terminal: its bars and epoch lines, from rank 0
            from detectlab.progress import TqdmProgress

            bar = TqdmProgress()

            def progress(done, total=None, desc=""):
                store_progress(done, total, desc)
                bar(done, total, desc)

            def on_epoch(e):
                print(epoch_line(e), flush=True)

        _execute_detector(store, record, layout, progress, on_epoch, store_progress, record_failures=False)
    else:
        cfg.out_dir = str(layout.root)
        train(cfg, run_id=run_id)


def _record_failure(store: RunStore, run_id: str, exc: BaseException, checkpoint: Path | None) -> None:
    reason = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    store.finish(run_id, "failed", {"traceback": traceback.format_exc()[-4000:]},
                 checkpoint=str(checkpoint) if checkpoint else None, error=reason)


def _execute_job(store: RunStore, record, layout: RunLayout, progress, store_progress: StoreProgress):
    """A job that names its runner (an experiment): its downloads go to the run's folder, its result record to
    the run's row."""
    from detectlab.progress import Cancelled
    from detectlab.runs.manager import job_runner

    run_id = record.id
    try:
        out_dir = layout.run_dir(run_id)
        out_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        result = job_runner(record.config).execute(record.config, out_dir, progress=progress,
                                                   cancel=StoreCancelToken(store, run_id))
        phases = {k: round(v, 1) for k, v in store_progress.stop().items()}
        store.finish(run_id, "finished", {**result, "phase_seconds": phases,
                                          "wall_seconds": round(time.monotonic() - started, 1)})
        return result
    except Cancelled as exc:
        store.finish(run_id, "cancelled", error=str(exc) or "cancelled")
        return None
    except BaseException as exc:  # noqa: BLE001 - recorded, then re-raised for the exit code
        _record_failure(store, run_id, exc, None)
        raise


def _execute_localizer(store: RunStore, record, progress, on_epoch):
    """Train a localizer into DetectLab's ``localizers`` folder (listed by the Localize tab)."""
    from detectlab.localize import LocalizerConfig, train_localizer
    from detectlab.progress import Cancelled

    run_id = record.id
    try:
        cfg = LocalizerConfig.from_dict({**record.config, "out_dir": str(config.home() / "localizers"),
                                         "name": f"run-{run_id}"})

        def record_epoch(row: dict) -> None:
            store.add_epoch(run_id, int(row["epoch"]), row)
            if on_epoch:
                on_epoch(row)

        try:
            result = train_localizer(cfg, progress=progress, cancel=StoreCancelToken(store, run_id),
                                     on_epoch=record_epoch)
        except Cancelled as exc:
            store.finish(run_id, "cancelled", {"kind": "localizer"}, error=str(exc) or "cancelled")
            return None
        summary = {"kind": "localizer", "test": result["metrics"]["test"], "seconds": result["train_seconds"],
                   "imgsz": result.get("imgsz")}
        store.finish(run_id, "finished", summary, checkpoint=result["checkpoint"])
        return result
    except BaseException as exc:  # noqa: BLE001 - every failure is recorded, then re-raised for the exit code
        _record_failure(store, run_id, exc, None)
        raise


def _execute_detector(store: RunStore, record, layout: RunLayout, both_progress, on_epoch,
                      store_progress: StoreProgress | None = None, record_failures: bool = True):
    from detectlab.progress import Cancelled
    from detectlab.train import TrainConfig, train

    run_id = record.id
    try:
        cfg = TrainConfig.from_dict(record.config)
        cfg.out_dir = str(layout.root)
        ckpt = layout.checkpoint(run_id, 0, cfg.runs)  # the first repeat's: the one the run reports

        step_losses = StepLosses(store, run_id)

        def record_epoch(entry: dict) -> None:
            step_losses.flush()  # the step curve reaches the epoch's end before the epoch's point appears
            store.add_epoch(run_id, entry["epoch"], entry)
            if ckpt.exists():
                store.set_checkpoint(run_id, str(ckpt))
            if on_epoch:
                on_epoch(entry)

        started = time.monotonic()
        try:
            result = train(cfg, progress=both_progress, cancel=StoreCancelToken(store, run_id),
                           on_epoch=record_epoch, run_id=run_id, on_step=step_losses)
        finally:
            step_losses.flush()
        phases = {k: round(v, 1) for k, v in (store_progress.stop() if store_progress else {}).items()}
        first = result.runs[0]
        status = "cancelled" if any(r.status == "cancelled" for r in result.runs) else "finished"
        summary = {"test": first.test, "val": first.val, "best_epoch": first.best_epoch,
                   "images_per_second": first.images_per_second, "seconds": sum(r.seconds for r in result.runs),
                   "weights": first.weights, "notes": first.notes, "runs": len(result.runs),
                   "mean_std": result.summary if len(result.runs) > 1 else None,
                   "phase_seconds": phases, "wall_seconds": round(time.monotonic() - started, 1),
                   "hardware": _hardware(first)}
        store.finish(run_id, status, summary, checkpoint=first.checkpoint)
        return result
    except Cancelled as exc:  # a cancel met outside the steps that keep what they finished
        ckpt = layout.saved_checkpoint(run_id)
        store.finish(run_id, "cancelled", checkpoint=str(ckpt) if ckpt else None, error=str(exc) or "cancelled")
        return None
    except BaseException as exc:  # noqa: BLE001 - every failure is recorded, then re-raised for the exit code
        if record_failures:  # a rank's failure is its launcher's to record, with the agent's report
            _record_failure(store, run_id, exc, layout.saved_checkpoint(run_id))
        raise


def _hardware(run) -> dict:
    """Where a run trained (device, processes, backend, mixed precision), from its checkpoint's metadata."""
    if not run.checkpoint:
        return {}
    from detectlab.models.checkpoint import read_metadata

    try:
        return read_metadata(run.checkpoint).get("hardware", {})
    except Exception:  # noqa: BLE001 - a summary without it is still a summary
        return {}


def main(argv: list[str] | None = None) -> int:
    from detectlab.config import set_offline_env

    set_offline_env()
    argv = list(argv or sys.argv[1:])
    if argv[:1] == ["--rank"]:  # one rank of a distributed run: torchrun's agent reports how it ended
        from torch.distributed.elastic.multiprocessing.errors import record

        record(execute_rank)(*argv[1:4])
        # done, its outcome in the store: leave without tearing down the process group and torch's threads,
        # whose destructors abort a rank now and then ("terminate called without an active exception") once
        # its peer has gone, turning a finished run into a failed launch
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    db, run_id, runs_dir = argv[:3]
    try:
        execute_run(RunStore(db), run_id, Path(runs_dir))
    except Exception:  # noqa: BLE001 - already recorded in the store
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
