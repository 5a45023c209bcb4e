"""Run history, queue, cancel and worker crashes (real worker processes, a tiny data set)."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from PIL import Image

from detectlab.runs import RunManager, RunStore, describe_exit


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


def _wait(pred, timeout, step=0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return False


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


def test_cancel_queue_kill_and_restart(tmp_path, tiny_data):
    home = tmp_path / "home"
    m = RunManager(home, poll_seconds=0.2)
    try:
        first = m.submit(_cfg(tiny_data, epochs=1, iterations=400), name="long")
        second = m.submit(_cfg(tiny_data, iterations=400), name="queued")
        assert _wait(lambda: m.store.get(first.id).status == "running" and len(m.store.epochs(first.id)) >= 1, 120)
        assert m.store.get(second.id).status == "queued"  # one worker at a time: the second waits

        # cancel: the run stops within 5 s and keeps its history
        epochs_before = len(m.store.epochs(first.id))
        t0 = time.monotonic()
        m.cancel(first.id)
        assert _wait(lambda: m.store.get(first.id).status == "cancelled", 5), m.store.get(first.id)
        assert time.monotonic() - t0 < 5
        assert len(m.store.epochs(first.id)) >= epochs_before

        # the queued run starts next; kill its worker outright
        assert _wait(lambda: m.store.get(second.id).status == "running" and m.worker_pid(), 60)
        assert _wait(lambda: len(m.store.epochs(second.id)) >= 1, 120)
        os.kill(m.worker_pid(), signal.SIGKILL)
        assert _wait(lambda: m.store.get(second.id).status == "failed", 10)
        r = m.store.get(second.id)
        assert "SIGKILL" in r.error and r.checkpoint and os.path.exists(r.checkpoint)
        assert len(m.store.epochs(second.id)) >= 1 and m.store.integrity_ok()

        # the next run starts normally after a crash
        third = m.submit(_cfg(tiny_data, iterations=20), name="after-crash")
        assert _wait(lambda: m.store.get(third.id).status == "finished", 120), m.store.get(third.id)
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


def test_killed_repeated_runs_worker_keeps_its_checkpoint(tmp_path, tiny_data):
    """Repeated runs write run0/, run1/...; a worker killed mid-way still leaves the run its best model."""
    m = RunManager(tmp_path / "home", poll_seconds=0.2)
    try:
        rec = m.submit(_cfg(tiny_data, runs=2, epochs=60, iterations=None), name="repeats")
        assert _wait(lambda: m.store.get(rec.id).status == "running" and len(m.store.epochs(rec.id)) >= 1
                     and m.worker_pid(), 120)
        os.kill(m.worker_pid(), signal.SIGKILL)
        assert _wait(lambda: m.store.get(rec.id).status == "failed", 10)
        r = m.store.get(rec.id)
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
        assert r.status == "failed" and "not running" in r.error
    finally:
        m.close()


def test_bad_config_is_refused_at_submit(tmp_path):
    m = RunManager(tmp_path / "home")
    try:
        with pytest.raises(ValueError, match="unknown training settings"):
            m.submit({"arch": "resnet18", "nonsense": 1})
    finally:
        m.close()
