"""Run history, queue, cancel and worker crashes (real worker processes, a tiny data set)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detectlab.errors import DetectLabError
from detectlab.runs import RunManager, RunStore, describe_exit
from detectlab.runs.manager import validate_run_config
from detectlab.runs.store import pid_alive
from detectlab.train.layout import runs_db


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs-data")
    rng = np.random.default_rng(1)
    for cls in ("real", "gan"):
        (root / cls).mkdir()
        for i in range(30):
            a = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            if cls == "gan":
                a[::2, ::2] = 255
            Image.fromarray(a).save(root / cls / f"{i:03d}.png")
    return root


def _cfg(data, **kw):
    base = dict(data=str(data), arch="resnet18", input_size=32, iterations=400, batch_size=8, lr=1e-3, threads=1)
    base.update(kw)
    return base


def _wait(store, run_id, until, timeout):
    """Run ``run_id``'s record once ``until(record)`` holds; the store re-reads only when the database changed."""
    return store.wait_for(run_id, until, timeout)


def _ended(status):
    return lambda r: r.status == status


def _epochs(store, n=1):
    """Running with at least ``n`` finished epochs."""
    return lambda r: r.status == "running" and len(store.epochs(r.id)) >= n


def test_store_round_trip_and_first_outcome_wins(tmp_path):
    store = RunStore(tmp_path / "r.sqlite")
    store.create("a", {"arch": "resnet18"}, "first")
    store.add_epoch("a", 1, {"epoch": 1, "val_accuracy": 0.5})
    store.finish("a", "cancelled")
    store.finish("a", "failed", error="late")  # ignored: the run already ended
    r = store.get("a")
    assert (r.status, r.name, r.error) == ("cancelled", "first", None)
    assert store.epochs("a") == [{"epoch": 1, "val_accuracy": 0.5}]
    assert store.integrity_ok()


def test_describe_exit():
    assert "SIGKILL" in describe_exit(-signal.SIGKILL) and "out of memory" in describe_exit(-9)
    assert describe_exit(3) == "worker process exited with code 3"


@pytest.mark.slow  # worker processes train for real
def test_cancel_queue_kill_and_restart(tmp_path, tiny_data):
    home = tmp_path / "home"
    m = RunManager(home, poll_seconds=0.2)
    try:
        first = m.submit(_cfg(tiny_data, epochs=1, iterations=400), name="long")
        second = m.submit(_cfg(tiny_data, iterations=400), name="queued")
        _wait(m.store, first.id, _epochs(m.store), 120)
        assert m.store.get(second.id).status == "queued"  # one worker at a time: the second waits

        # cancel: the run stops within 5 s and keeps its history
        epochs_before = len(m.store.epochs(first.id))
        t0 = time.monotonic()
        m.cancel(first.id)
        _wait(m.store, first.id, _ended("cancelled"), 5)
        assert time.monotonic() - t0 < 5
        assert len(m.store.epochs(first.id)) >= epochs_before

        # the queued run starts next; kill its worker outright
        running = _wait(m.store, second.id, _epochs(m.store), 180)
        assert running.pid == m.worker_pid()
        os.kill(running.pid, signal.SIGKILL)
        r = _wait(m.store, second.id, _ended("failed"), 10)
        assert "SIGKILL" in r.error and r.checkpoint and os.path.exists(r.checkpoint)
        assert len(m.store.epochs(second.id)) >= 1 and m.store.integrity_ok()

        # the next run starts normally after a crash
        third = m.submit(_cfg(tiny_data, iterations=20), name="after-crash")
        _wait(m.store, third.id, _ended("finished"), 120)
        assert third.id in " ".join(m.checkpoints())
    finally:
        m.close()

    # a restarted app sees the whole history
    m2 = RunManager(home, poll_seconds=0.2)
    try:
        statuses = {r.name: r.status for r in m2.store.list()}
        assert statuses == {"long": "cancelled", "queued": "failed", "after-crash": "finished"}
    finally:
        m2.close()


@pytest.mark.slow  # worker processes train for real
def test_killed_repeated_runs_worker_keeps_its_checkpoint(tmp_path, tiny_data):
    """Repeated runs write run0/, run1/...; a worker killed mid-way still leaves the run its best model."""
    m = RunManager(tmp_path / "home", poll_seconds=0.2)
    try:
        rec = m.submit(_cfg(tiny_data, runs=2, epochs=60, iterations=None), name="repeats")
        running = _wait(m.store, rec.id, _epochs(m.store), 120)
        os.kill(running.pid, signal.SIGKILL)
        r = _wait(m.store, rec.id, _ended("failed"), 10)
        assert "SIGKILL" in r.error
        expected = m.layout.checkpoint(rec.id, 0, 2)
        assert expected == tmp_path / "home" / "runs" / rec.id / "run0" / "model.safetensors"
        assert r.checkpoint == str(expected) and expected.exists()
        assert rec.id in " ".join(m.checkpoints())  # pickable as a detector
    finally:
        m.close()


def test_run_layout_paths(tmp_path):
    from detectlab.train.layout import RunLayout, new_run_id, runs_db

    layout = RunLayout(tmp_path / "runs")
    rid = new_run_id()
    assert layout.checkpoint(rid) == tmp_path / "runs" / rid / "model.safetensors"
    assert layout.checkpoint(rid, 1, 3) == tmp_path / "runs" / rid / "run1" / "model.safetensors"
    assert layout.saved_checkpoint(rid) is None
    layout.checkpoint(rid, 0, 2).parent.mkdir(parents=True)
    layout.checkpoint(rid, 0, 2).write_bytes(b"x")
    assert layout.saved_checkpoint(rid) == layout.checkpoint(rid, 0, 2)
    assert RunLayout.default(tmp_path).root == tmp_path / "runs" and runs_db(tmp_path) == tmp_path / "runs.sqlite"
    assert RunLayout.of("") == RunLayout.default() and RunLayout.of(tmp_path).root == tmp_path
    assert new_run_id() != rid and len(rid) == len("20261127-031500-ab12cd")


def test_recover_marks_orphaned_runs_failed(tmp_path):
    store = RunStore(tmp_path / "home" / "runs.sqlite")
    store.create("orphan", {"arch": "resnet18"})
    store.mark_running("orphan", pid=2**22 + 12345)  # no such process
    m = RunManager(tmp_path / "home")
    try:
        r = m.store.get("orphan")
        assert r.status == "failed" and f"pid {2**22 + 12345}" in r.error and "ended without recording" in r.error
    finally:
        m.close()


def test_bad_config_is_refused_at_submit(tmp_path):
    m = RunManager(tmp_path / "home")
    try:
        with pytest.raises(ValueError, match="unknown training settings"):
            m.submit({"arch": "resnet18", "nonsense": 1})
    finally:
        m.close()


def _queue_and_die(home, config) -> subprocess.Popen:
    """An app process that queues a run and is then killed: its worker (own session) lives on."""
    code = ("import json, signal, sys\nfrom detectlab.runs import RunManager\n"
            "m = RunManager(sys.argv[1], poll_seconds=0.2)\n"
            "print(m.submit(json.loads(sys.argv[2]), name='orphan').id, flush=True)\n"
            "signal.pause()\n")  # serves (its watcher thread runs) until killed
    return subprocess.Popen([sys.executable, "-c", code, str(home), json.dumps(config)], stdout=subprocess.PIPE,
                            text=True)


@pytest.mark.slow  # worker processes train for real
def test_restarted_app_adopts_the_live_worker_and_never_runs_two(tmp_path, tiny_data):
    home = tmp_path / "home"
    app = _queue_and_die(home, _cfg(tiny_data, iterations=160))
    try:
        # the app answers with the id of the run it queued, in the database the restarted app shares
        rid = app.stdout.readline().strip()
        store = RunStore(runs_db(home))
        running = _wait(store, rid, _epochs(store), 180)
        app.kill()
        app.wait(10)
        assert pid_alive(running.pid), "the worker outlives its app"

        m = RunManager(home, poll_seconds=0.2)  # the restarted app
        try:
            assert m.store.get(rid).status == "running"  # adopted, not marked failed
            second = m.submit(_cfg(tiny_data, iterations=10), name="after-restart")
            # while the adopted worker runs, the queue waits: one worker at a time
            for _ in range(5):
                m._tick()
                assert m.worker_pid() is None and m.store.get(second.id).status == "queued"
            done = _wait(m.store, rid, lambda r: r.status in ("finished", "failed", "cancelled"), 240)
            assert done.status == "finished" and done.error is None  # the worker's own outcome
            assert done.result["test"]["accuracy"] is not None
            _wait(m.store, second.id, _ended("finished"), 120)
            assert m.store.get(second.id).started >= done.finished
        finally:
            m.close()
    finally:
        app.kill()


def test_killed_cli_run_is_marked_failed_within_a_minute(tmp_path, tiny_data):
    home = tmp_path / "home"
    env = {**os.environ, "DETECTLAB_HOME": str(home), "OMP_NUM_THREADS": "1"}
    store = RunStore(runs_db(home))  # the database the CLI will record its run in
    cli = subprocess.Popen([sys.executable, "-m", "detectlab", "train", "--data", str(tiny_data), "--arch", "resnet18",
                            "--input-size", "32", "--iterations", "2000", "--batch-size", "8", "--name", "cli-run"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rid = store.wait_until(lambda: [r.id for r in store.list()], 120, "the CLI did not record its run")[0]
        running = _wait(store, rid, _ended("running"), 120)
        assert running.pid == cli.pid and running.heartbeat is not None
        cli.kill()
        cli.wait(10)
        t0 = time.monotonic()
        # any later open of the store (a CLI command, an app start) reaps it
        r = RunStore(runs_db(home)).get(rid)
        assert r.status == "failed" and f"pid {cli.pid}" in r.error and "ended without recording" in r.error
        assert time.monotonic() - t0 < 60
    finally:
        cli.kill()


def test_silent_heartbeat_marks_a_run_failed(tmp_path, monkeypatch):
    """A process that is alive but silent (stopped, hung, or a pid reused) ends failed after the timeout."""
    monkeypatch.setenv("DETECTLAB_HEARTBEAT_TIMEOUT", "30")
    store = RunStore(tmp_path / "r.sqlite")
    store.create("a", {"arch": "resnet18"})
    store.mark_running("a", pid=os.getpid())  # alive: this test
    assert store.reap() == [] and store.get("a").status == "running"
    store._exec("UPDATE runs SET heartbeat=? WHERE id='a'", (time.time() - 31,))
    assert store.reap() == ["a"]
    assert "no heartbeat" in store.get("a").error and "31 s" in store.get("a").error


def test_heartbeat_beats_while_a_block_runs(tmp_path):
    from detectlab.runs.worker import heartbeat

    store = RunStore(tmp_path / "r.sqlite")
    store.create("a", {"arch": "resnet18"})
    store.mark_running("a", pid=os.getpid())
    first = store.get("a").heartbeat
    with heartbeat(store, "a", every=0.05):
        later = _wait(store, "a", lambda r: r.heartbeat > first, 5)
    assert later.heartbeat > first


def test_delete_removes_an_ended_run_and_its_files(tmp_path):
    m = RunManager(tmp_path / "home")
    try:
        m.store.create("r1", {"arch": "resnet18"})
        with pytest.raises(ValueError, match="queued; cancel it"):
            m.delete("r1")
        run_dir = m.layout.run_dir("r1")
        run_dir.mkdir(parents=True)
        (run_dir / "model.safetensors").write_bytes(b"x")
        m.layout.log("r1").write_text("log")
        m.store.add_epoch("r1", 1, {"epoch": 1})
        m.store.finish("r1", "finished", checkpoint=str(run_dir / "model.safetensors"))
        assert m.delete("r1").id == "r1"
        assert not run_dir.exists() and not m.layout.log("r1").exists()
        with pytest.raises(KeyError):
            m.store.get("r1")
        assert m.store.epochs("r1") == []
    finally:
        m.close()


@pytest.mark.slow  # a U-Net trains in a worker process
def test_localizer_run_through_the_queue(tmp_path, monkeypatch):
    """A localizer is another run kind: same worker, per-epoch history, outcome; not a detector in pickers."""
    from tests.test_localize import make_masked_set

    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path / "home"))
    data = make_masked_set(tmp_path / "masked", n=24, size=64)
    m = RunManager(tmp_path / "home", poll_seconds=0.2)
    try:
        with pytest.raises(DetectLabError, match="imgsz must be a multiple of 32"):
            m.submit({"kind": "localizer", "arch": "unet", "data": str(data), "imgsz": 50})
        rec = m.submit({"kind": "localizer", "arch": "unet", "data": str(data), "epochs": 2, "imgsz": 64,
                        "batch": 8, "threads": 1, "width": 8}, name="loc")
        done = _wait(m.store, rec.id, lambda r: r.status in ("finished", "failed", "cancelled"), 300)
        assert done.status == "finished", done.error
        assert done.kind == "localizer" and "unet localizer" in done.label and "dice" in done.label
        assert 0.0 <= done.result["test"]["pixel"]["dice"] <= 1.0
        assert [e["epoch"] for e in m.store.epochs(rec.id)] == [1, 2]
        assert {"train_loss", "val_dice"} <= set(m.store.epochs(rec.id)[0])
        ckpt = Path(done.checkpoint)
        assert ckpt.exists() and ckpt.parent == tmp_path / "home" / "localizers" and rec.id in ckpt.name
        assert m.checkpoints() == {}  # not offered as a detector
        from detectlab.localize.localizer import localizer_choices

        assert any(rec.id in label for label in localizer_choices())
        m.delete(rec.id)
        assert not ckpt.exists()
    finally:
        m.close()


def test_eta_is_measured_over_the_training_stage_and_does_not_jump_at_epochs(tmp_path):
    from detectlab.runs.worker import StoreProgress

    store = RunStore(tmp_path / "r.sqlite")
    store.create("a", {"arch": "resnet18"})
    p = StoreProgress(store, "a")
    assert p.eta(0, 40, "train resnet18 (epoch 1/4)", 100.0) is None  # the stage's first step: no rate yet
    assert p.eta(10, 40, "train resnet18 (epoch 1/4)", 110.0) == pytest.approx(30.0)  # 1 s a step, 30 left
    # a validation between epochs is a phase of its own and does not restart training's clock
    assert p.eta(64, 128, "validate (epoch 1/4)", 111.0) is None
    assert p.eta(128, 128, "validate (epoch 1/4)", 112.0) == pytest.approx(0.0)
    # a new epoch (new stage text, same step count) keeps the rate measured since the first step
    assert p.eta(20, 40, "train resnet18 (epoch 3/4)", 120.0) == pytest.approx(20.0)
    # the next validation starts its own clock again (its count went back)
    assert p.eta(64, 128, "validate (epoch 3/4)", 121.0) is None
    p(30, 40, "train resnet18 (epoch 4/4)")
    assert store.get("a").stage == "train resnet18 (epoch 4/4)" and store.get("a").step == 30


@pytest.mark.parametrize("stage", ["decode train images", "extract backbone features of the train split",
                                   "extract backbone features of augmented copies (draw 2/6)",
                                   "validate (epoch 2/5)", "score the test split"])
def test_every_phase_gets_an_eta(tmp_path, stage):
    """Decoding, feature extraction, validation and evaluation get an ETA like training: 0.5 s an item, 50 left."""
    from detectlab.runs.worker import StoreProgress

    store = RunStore(tmp_path / "r.sqlite")
    store.create("a", {"arch": "resnet18"})
    p = StoreProgress(store, "a")
    assert p.eta(1, 101, stage, 10.0) is None
    assert p.eta(51, 101, stage, 35.0) == pytest.approx(25.0)


def test_the_worker_times_each_phase(tmp_path, monkeypatch):
    from detectlab.runs import worker
    from detectlab.runs.worker import StoreProgress, coarse_phase

    assert [coarse_phase(s) for s in ("Checking images", "decode val images", "extract backbone features",
                                      "train resnet18 (epoch 2/3)", "validate (epoch 2/3)",
                                      "score the test split (backbone features)")] == [
        "check files", "decode", "extract features", "train", "validate", "evaluate"]
    store = RunStore(tmp_path / "r.sqlite")
    store.create("a", {"arch": "resnet18"})
    import threading

    clock, real, me = iter([0.0, 3.0, 4.0, 10.0, 10.5]), worker.time.monotonic, threading.get_ident()
    # time.monotonic is the process's: only this thread's calls read the planted clock (a server thread of
    # the session, polling a queue, reads the real one)
    monkeypatch.setattr(worker.time, "monotonic", lambda: next(clock) if threading.get_ident() == me else real())
    p = StoreProgress(store, "a")
    p(1, 10, "decode train images")           # t=0
    p(1, 5, "train resnet18 (epoch 1/1)")     # t=3: 3 s of decoding
    p(5, 5, "train resnet18 (epoch 1/1)")     # t=4
    p(1, 2, "score the test split")           # t=10: 7 s of training
    assert p.stop() == {"decode": 3.0, "train": 7.0, "evaluate": 0.5}


def test_step_losses_are_batched_and_thinned(tmp_path):
    from detectlab.runs.worker import StepLosses

    store = RunStore(tmp_path / "r.sqlite")
    store.create("a", {"arch": "resnet18"})
    sink = StepLosses(store, "a", every=3600)  # nothing written until flushed
    for k in range(1, 5):
        sink({"step": k, "epoch": k / 4, "loss": float(k)})
    assert store.steps("a") == []
    sink.flush()
    assert store.steps("a") == [(4, 1.0, 2.5)]  # one row: the last step, the mean loss
    store.add_steps("a", [(k, k / 100, 1.0) for k in range(5, 105)])
    thinned = store.steps("a", max_points=10)
    assert len(thinned) <= 10 and thinned[0][0] == 4 and [r[0] for r in thinned] == sorted(r[0] for r in thinned)


def test_smoothed_curve():
    from detectlab.ui.train_tab import smoothed

    assert smoothed([1.0, 0.0, 0.0], alpha=0.5) == [1.0, 0.5, 0.25]
    assert smoothed([]) == []


# ---------------------------------------------------------------------------- one queue for the app and the CLI
_DEAD_PID = 2**22 + 12345  # no such process


def test_claim_starts_one_run_at_a_time_oldest_first(tmp_path):
    """``claim`` is the one way a run starts: nothing running, no older run still waiting its turn."""
    store = RunStore(tmp_path / "r.sqlite")
    store.create("a", {"arch": "resnet18"})
    store.create("b", {"arch": "resnet18"}, owner="cli")  # this process plays the waiting terminal
    store.create("c", {"arch": "resnet18"})
    assert not store.claim("b", os.getpid(), "cli")  # "a" is older and the app will start it
    assert store.blocker("b", "cli").id == "a"
    assert store.claim("a", os.getpid(), "app")
    assert not store.claim("a", os.getpid(), "app")  # once
    for rid, who in (("b", "cli"), ("c", "app")):
        assert not store.claim(rid, os.getpid(), who)  # "a" is running
        assert store.blocker(rid, who).id == "a"
    store.finish("a", "finished")
    assert not store.claim("c", os.getpid(), "app")  # the terminal's older run goes first
    assert store.blocker("c", "app").id == "b"
    assert store.claim("b", os.getpid(), "cli")
    r = store.get("b")
    assert (r.status, r.pid, r.owner, r.from_terminal) == ("running", os.getpid(), "cli", True)
    store.finish("b", "finished")
    assert store.claim("c", os.getpid(), "app") and store.blocker("c") is None


def test_claim_is_atomic_across_processes(tmp_path):
    """Eight processes race to claim eight queued runs: exactly one wins."""
    db = tmp_path / "r.sqlite"
    store = RunStore(db)
    for k in range(8):
        store.create(f"r{k}", {"arch": "resnet18"}, owner="cli", owner_pid=os.getpid())
    code = ("import os, sys, time\nfrom detectlab.runs.store import RunStore\n"
            "s = RunStore(sys.argv[1])\nwhile time.time() < float(sys.argv[3]): pass\n"
            "won = [r for r in ('r0', sys.argv[2]) if s.claim(r, os.getpid(), 'cli')]\nprint(','.join(won))\n")
    start = time.time() + 3
    procs = [subprocess.Popen([sys.executable, "-c", code, str(db), f"r{k}", str(start)], stdout=subprocess.PIPE,
                              text=True) for k in range(8)]
    won = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(w for w in won if w) == ["r0"], won  # only the oldest, only once
    assert [r.id for r in store.running()] == ["r0"]


def test_a_gone_terminals_queued_run_is_reaped_and_does_not_hold_the_queue(tmp_path):
    store = RunStore(tmp_path / "r.sqlite")
    store.create("gone", {"arch": "resnet18"}, owner="cli", owner_pid=_DEAD_PID)
    store.create("app", {"arch": "resnet18"})
    assert store.reap() == ["gone"]
    r = store.get("gone")
    assert r.status == "cancelled" and f"pid {_DEAD_PID}" in r.error and "ended before the run could start" in r.error
    assert store.claim("app", os.getpid(), "app")


def test_a_silent_waiting_terminal_is_reaped_after_the_heartbeat_timeout(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTLAB_HEARTBEAT_TIMEOUT", "30")
    store = RunStore(tmp_path / "r.sqlite")
    store.create("t", {"arch": "resnet18"}, owner="cli")  # this process: alive
    assert store.reap() == []
    store.beat("t")  # a waiting terminal beats too
    store._exec("UPDATE runs SET heartbeat=? WHERE id='t'", (time.time() - 31,))
    assert store.reap() == ["t"] and "no sign of life" in store.get("t").error


def test_the_terminal_does_not_wait_for_app_runs_no_app_will_start(tmp_path):
    """With no app serving, its queued runs wait for the next app; ``detectlab train`` goes ahead of them."""
    store = RunStore(tmp_path / "r.sqlite")
    store.create("left-by-a-dead-app", {"arch": "resnet18"}, owner="app", owner_pid=_DEAD_PID)
    store.create("t", {"arch": "resnet18"}, owner="cli")
    assert store.blocker("t", "cli") is None and store.claim("t", os.getpid(), "cli")
    assert store.get("left-by-a-dead-app").status == "queued"  # not reaped: the next app starts it


def test_an_old_database_gets_the_owner_columns(tmp_path):
    import sqlite3

    db = tmp_path / "old.sqlite"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', status TEXT NOT NULL, "
                  "config TEXT NOT NULL, created REAL NOT NULL, started REAL, finished REAL, pid INTEGER, "
                  "cancel INTEGER NOT NULL DEFAULT 0, step INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL "
                  "DEFAULT 0, stage TEXT NOT NULL DEFAULT '', checkpoint TEXT, result TEXT, error TEXT)")
        c.execute("INSERT INTO runs (id, status, config, created) VALUES ('old', 'queued', '{}', 1.0)")
    store = RunStore(db)
    r = store.get("old")
    assert r.owner is None and not r.from_terminal  # an app run, as before
    store.create("new", {"arch": "resnet18"}, owner="cli")
    assert store.claim("old", os.getpid(), "app")


def test_the_manager_never_spawns_a_terminals_run(tmp_path):
    home = tmp_path / "home"
    store = RunStore(runs_db(home))
    store.create("term", {"arch": "resnet18"}, owner="cli")  # this test process plays the waiting terminal
    m = RunManager(home, poll_seconds=0.1)
    try:
        for _ in range(5):
            m._tick()
        assert m.worker_pid() is None and m.store.get("term").status == "queued"
        m.cancel("term")  # the Train tab's cancel takes a terminal's run out of the queue
        assert m.store.get("term").status == "cancelled"
    finally:
        m.close()


class _Watch:
    """Samples the statuses of every run every 50 ms: the most runs ever seen ``running`` at once."""

    def __init__(self, store: RunStore) -> None:
        self.store, self.most, self.stop = store, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import sqlite3

        while not self.stop.wait(0.05):
            with sqlite3.connect(self.store.path, timeout=30) as c:  # a plain read: this must not reap anything
                n = c.execute("SELECT COUNT(*) FROM runs WHERE status='running'").fetchone()[0]
            self.most = max(self.most, n)

    def close(self) -> int:
        self.stop.set()
        self.thread.join(5)
        return self.most


class _DeafManager(RunManager):
    """A manager whose "worker" blocks until a signal and never reads the cancel flag (one stuck in a long
    operation)."""

    def _spawn(self, record):
        self._proc = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"],
                                      start_new_session=True)
        self._proc_run = record.id


def test_a_worker_that_ignores_cancel_is_stopped_and_the_run_ends_cancelled_within_5_s(tmp_path):
    m = _DeafManager(tmp_path / "home", poll_seconds=0.1)
    try:
        rec = m.submit(_cfg("/nowhere"), name="deaf")
        _wait(m.store, rec.id, lambda r: r.status == "running" and r.pid == m.worker_pid(), 30)
        t0 = time.monotonic()
        m.cancel(rec.id)
        r = _wait(m.store, rec.id, lambda r: r.status in ("cancelled", "failed"), 10)
        assert time.monotonic() - t0 < 5
        assert r.status == "cancelled" and "SIGTERM" in r.error, r.error
    finally:
        m.close()


def test_a_cancelled_runs_dead_worker_is_reaped_as_cancelled(tmp_path):
    store = RunStore(tmp_path / "r.sqlite")
    for run_id in ("asked", "not-asked"):
        store.create(run_id, {"arch": "resnet18"})
        store.mark_running(run_id, 2**22 + 12345)  # no such process
    store.request_cancel("asked")
    assert sorted(store.reap()) == ["asked", "not-asked"]
    assert store.get("asked").status == "cancelled" and store.get("not-asked").status == "failed"


def test_identical_runs_are_found_whatever_their_name_and_results_can_be_added(tmp_path):
    m = RunManager(tmp_path / "home", poll_seconds=60)  # the watcher never starts them
    try:
        cfg = _cfg("/data/a")
        first = m.store.create("r1", validate_run_config(cfg), "first")
        assert m.identical(dict(cfg, name="another name")).id == first.id
        assert m.identical(dict(cfg, seed=1)) is None and m.identical(dict(cfg, data="/data/b")) is None
        m.store.finish("r1", "cancelled")
        assert m.identical(cfg) is None  # a cancelled run is no reason to hesitate
        m.store.update_result("r1", {"heldout": {"crops": 0.1}})
        assert m.store.get("r1").result == {"heldout": {"crops": 0.1}}
    finally:
        m.close()
