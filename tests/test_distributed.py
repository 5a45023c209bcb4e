"""Data-parallel training through torchrun + DDP on the CPU (gloo), with real rank processes: two ranks with
batch B end where one process with batch 2B ends; a killed rank fails the run once, with the reason; a cancel
stops every rank; the launch flags and their bad combinations."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch

from detectlab.models.checkpoint import load_checkpoint
from detectlab.runs.manager import RunManager
from detectlab.train import TrainConfig, train

#: Tests that start rank processes (a torch import each, then training): 20-60 s on 2 busy cores.
ranks = pytest.mark.slow


from tests.test_train import tiny_set  # noqa: F401 - the same 32-px set: noise, and noise with a checkerboard


@pytest.fixture
def manager(tmp_path):
    m = RunManager(tmp_path / "home", poll_seconds=0.2)
    yield m
    for r in m.store.list():
        if r.status in ("queued", "running"):
            m.cancel(r.id)
    m.close()


def _config(data: Path, **kw) -> dict:
    base = dict(data=str(data), arch="resnet18", input_size=32, iterations=4, batch_size=4, lr=1e-3,
                weight_decay=0.0, threads=1, device="cpu", select_best=False)
    return TrainConfig(**(base | kw)).to_dict()


def _rank_pids(run_id: str) -> dict[int, int]:
    """Global rank -> pid of the live rank processes of ``run_id`` (torchrun names the job in their environment)."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = dict(kv.split("=", 1) for kv in (proc / "environ").read_bytes().decode(errors="replace").split("\0")
                       if "=" in kv)
        except OSError:
            continue
        if env.get("TORCHELASTIC_RUN_ID", "").startswith(f"detectlab-{run_id}") and "RANK" in env:
            found[int(env["RANK"])] = int(proc.name)
    return found


def _training_ranks(manager, data: Path, name: str):
    """Queue a long 2-rank run and wait for its first epoch; the record and the ranks' pids."""
    record = manager.submit(_config(data, iterations=5000, processes=2), name=name)
    manager.store.wait_for(record.id, lambda r: len(manager.store.epochs(r.id)) >= 1 or r.status != "running", 90)
    pids = _rank_pids(record.id)
    assert sorted(pids) == [0, 1], pids
    return record, pids


def _all_gone(pids, timeout: float = 15) -> bool:
    """Wait for each process's own exit notice (a pidfd turns readable when the process ends), not a poll."""
    import select

    from detectlab.runs.store import pid_alive

    deadline = time.monotonic() + timeout
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue  # gone already
        try:
            select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        finally:
            os.close(fd)
    return not any(pid_alive(p) for p in pids)


@ranks
def test_two_gloo_ranks_with_batch_b_end_where_one_process_with_batch_2b_ends(manager, tiny_set, tmp_path):
    """ConvNeXt-atto has no batch norm (whose statistics DDP keeps per rank), so the two must agree to float
    rounding: the same split, the same seeded global batches and flips, the gradients of the two shares averaged."""
    cfg = _config(tiny_set, arch="convnext_atto", processes=2)
    record = manager.submit(cfg, name="ddp")
    done = manager.store.wait_for(record.id, lambda r: r.status not in ("queued", "running"), 120)
    assert done.status == "finished", (done.error, done.result)
    assert done.result["hardware"] == {"device": "cpu", "processes": 2, "amp": False, "backend": "gloo"}
    assert any("2 processes (DDP, gloo): global batch 2 x 4" in n for n in done.result["notes"])
    assert len(manager.store.epochs(record.id)) == 1 and len(manager.store.list()) == 1  # one history entry

    single = train(TrainConfig.from_dict(cfg | {"processes": 1, "batch_size": 8, "out_dir": str(tmp_path / "one")})).runs[0]
    assert single.status == "finished"
    ddp_det, meta = load_checkpoint(done.checkpoint)
    one_det, _ = load_checkpoint(single.checkpoint)
    assert meta["hardware"]["processes"] == 2
    ddp_state, one_state = ddp_det.state_dict(), one_det.state_dict()
    start = TrainConfig.from_dict(cfg)  # the weights moved: equality is not the untrained model's
    torch.manual_seed(start.seed)
    from detectlab.models import create_detector

    init = create_detector(start.arch, start.pretrained, start.input_size).state_dict()
    moved = max(float((one_state[k].float() - init[k].float()).abs().max()) for k in one_state)
    assert moved > 1e-3
    worst = max(float((ddp_state[k].float() - one_state[k].float()).abs().max()) for k in one_state)
    assert worst < 1e-5, worst
    assert done.result["val"]["val_loss"] == pytest.approx(single.val["val_loss"], abs=1e-5)


@ranks
def test_a_killed_rank_fails_the_run_once_with_the_reason(manager, tiny_set):
    record, pids = _training_ranks(manager, tiny_set, "killed")
    os.kill(pids[1], signal.SIGKILL)
    done = manager.store.wait_for(record.id, lambda r: r.status not in ("queued", "running"), 60)
    assert done.status == "failed"
    assert f"rank 1 (pid {pids[1]})" in done.error and "SIGKILL" in done.error, done.error
    assert "elastic agent stopped the other ranks" in done.error
    assert done.result["failures"][0]["rank"] == 1
    # nothing doubled: one run in the history, one checkpoint (rank 0's best epoch), epochs counted once
    assert [r.id for r in manager.store.list()] == [record.id]
    run_dir = manager.layout.run_dir(record.id)
    assert [p.name for p in run_dir.rglob("*.safetensors")] == ["model.safetensors"]
    assert done.checkpoint == str(run_dir / "model.safetensors")
    epochs = [e["epoch"] for e in manager.store.epochs(record.id)]
    assert epochs == list(range(1, len(epochs) + 1))
    assert _all_gone(pids.values())  # the agent stopped rank 0 too


@ranks
def test_a_cancel_from_the_store_stops_every_rank(manager, tiny_set):
    record, pids = _training_ranks(manager, tiny_set, "cancelled")
    asked = time.monotonic()
    manager.store.request_cancel(record.id)  # the Train tab's Cancel: the flag only (no signal from the manager)
    done = manager.store.wait_for(record.id, lambda r: r.status not in ("queued", "running"), 30)
    assert done.status == "cancelled", (done.error, done.result)
    assert time.monotonic() - asked < 10
    assert done.checkpoint and Path(done.checkpoint).exists()
    assert _all_gone(pids.values())
    assert [p.name for p in manager.layout.run_dir(record.id).rglob("*.safetensors")] == ["model.safetensors"]


@ranks
def test_two_machines_meet_at_the_endpoint_and_train_as_one_job(tiny_set, tmp_path):
    """The README's two-machine command, both "machines" on this one (loopback endpoint, a home each): the two
    elastic agents meet at the c10d endpoint, form one 2-rank job, and end where one process with the doubled
    batch ends. One of the two holds global rank 0 and keeps the checkpoint; the other's history says its part
    finished and where the run is kept."""
    import json
    import socket
    import subprocess
    import sys

    from detectlab.config import REPO_ROOT
    from detectlab.runs.store import RunStore

    cfg = _config(tiny_set, arch="convnext_atto")
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    with socket.socket() as s:   # a free port for the rendezvous store
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "DETECTLAB_HOME": str(tmp_path / f"machine{rank}")}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "detectlab", "train", str(tmp_path / "cfg.json"), "--nproc-per-node", "1",
             "--nnodes", "2", "--node-rank", str(rank), "--rdzv-endpoint", f"127.0.0.1:{port}", "--device", "cpu"],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    records = [RunStore(tmp_path / f"machine{rank}" / "runs.sqlite").list() for rank in (0, 1)]
    assert [len(r) for r in records] == [1, 1] and all(r[0].status == "finished" for r in records), records
    kept = [r[0] for r in records if r[0].checkpoint and Path(r[0].checkpoint).exists()]
    assert len(kept) == 1, records   # one checkpoint, on the machine that held global rank 0
    assert kept[0].result["hardware"] == {"device": "cpu", "processes": 2, "amp": False, "backend": "gloo"}
    other = next(r[0] for r in records if r[0] is not kept[0])
    assert other.checkpoint is None and "global rank 0 ran on another machine" in other.result["notes"][0]
    assert len(list(tmp_path.rglob("*.safetensors"))) == 1

    single = train(TrainConfig.from_dict(cfg | {"processes": 1, "batch_size": 8, "out_dir": str(tmp_path / "one")})).runs[0]
    two, _ = load_checkpoint(kept[0].checkpoint)
    one, _ = load_checkpoint(single.checkpoint)
    worst = max(float((two.state_dict()[k].float() - v.float()).abs().max()) for k, v in one.state_dict().items())
    assert worst < 1e-5, worst


@pytest.mark.parametrize("argv, message", [
    (["--nnodes", "2"], "--nnodes 2 needs --rdzv-endpoint HOST:PORT"),
    (["--node-rank", "1"], "--node-rank and --rdzv-endpoint go with --nnodes M"),
    (["--nnodes", "2", "--node-rank", "2", "--rdzv-endpoint", "h:29500"], "--node-rank 2 needs --nnodes above it"),
    (["--nnodes", "2", "--node-rank", "1", "--rdzv-endpoint", "h"], "--rdzv-endpoint must be HOST:PORT"),
    (["--nnodes", "2", "--rdzv-endpoint", "h:70000"], "a port in 1-65535"),
    (["--nproc-per-node", "0"], "--nproc-per-node must be an integer >= 1, got 0"),
    (["--nproc-per-node", "65"], "--nproc-per-node must be at most 64"),
    (["--nproc-per-node", "2", "--device", "cuda"] if not torch.cuda.is_available() else
     ["--nproc-per-node", str(torch.cuda.device_count() + 1), "--device", "cuda"], "cuda"),
])
def test_bad_launch_flags_are_refused_before_anything_is_queued(argv, message, capsys, tmp_path, monkeypatch):
    from detectlab.cli import main
    from detectlab.runs.store import RunStore

    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path))
    assert main(["train", "--data", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert RunStore(tmp_path / "runs.sqlite").list() == []


def test_launch_flags_parse_into_torchruns_settings():
    from detectlab.cli import build_parser
    from detectlab.commands.train import _launch
    from detectlab.train.distributed import Launch

    args = build_parser().parse_args(["train", "--nproc-per-node", "4", "--nnodes", "2", "--node-rank", "1",
                                      "--rdzv-endpoint", "10.0.0.1:29500"])
    assert _launch(args) == Launch(nproc_per_node=4, nnodes=2, node_rank=1, rdzv_endpoint="10.0.0.1:29500")
    assert _launch(args).distributed
    plain = _launch(build_parser().parse_args(["train"]))
    assert plain == Launch() and not plain.distributed
