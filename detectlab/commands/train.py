"""`detectlab train`: train a detector through the run queue the app's Train tab shares; with
``--nproc-per-node N`` (and ``--nnodes M --node-rank R --rdzv-endpoint HOST:PORT`` on each of M
machines) data-parallel through torchrun and DDP (see ``detectlab.train.distributed``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

#: ``detectlab train`` flags that are TrainConfig settings of the same name (parsed by ``with_overrides``).
_TRAIN_FLAGS = ("data", "generators", "arch", "pretrained", "input_size", "epochs", "iterations", "batch_size", "lr",
                "weight_decay", "seed", "runs", "split_seed", "adv_eps", "out_dir", "name", "train_part",
                "threads", "init_from")


def _cmd_train(args: argparse.Namespace) -> int:
    from detectlab.demo.build import ensure_demo
    from detectlab.progress import TqdmProgress
    from detectlab.train import TrainConfig

    cfg = TrainConfig.from_file(args.config) if args.config else TrainConfig()
    if args.preset:
        cfg = cfg.with_preset(args.preset)
    launch = _launch(args)
    cfg = cfg.with_overrides(
        **{key: getattr(args, key) for key in _TRAIN_FLAGS}, device=getattr(args, "device", None),
        processes=args.nproc_per_node,
        weighted_sampling=False if args.no_weighted_sampling else None, hflip=False if args.no_hflip else None,
        augment_p=args.augment or None,
        augment_kinds=args.augment_kinds.split(",") if args.augment_kinds else None)
    if args.nproc_per_node is None:  # a settings file's processes
        launch = dataclasses.replace(launch, nproc_per_node=cfg.processes)
    _check_gpus(cfg.device, launch.nproc_per_node)
    if not cfg.data:
        cfg.data = str(ensure_demo())
    from detectlab.runs import RunStore
    from detectlab.runs.worker import epoch_line, execute_run
    from detectlab.train.distributed import RanksFailed
    from detectlab.train.layout import RunLayout, new_run_id, runs_db

    store = RunStore(runs_db())
    # one queue with the app: this terminal's run waits for its turn, then executes here
    record = store.create(new_run_id(), json.loads(json.dumps(cfg.to_dict())), cfg.name, owner="cli",
                          owner_pid=os.getpid())
    if not _wait_for_turn(store, record.id):
        return 1
    progress = TqdmProgress()
    try:
        result = execute_run(store, record.id, RunLayout.of(cfg.out_dir).root, progress=progress,
                             on_epoch=lambda e: print(epoch_line(e), flush=True), launch=launch)
    except RanksFailed:
        r = store.get(record.id)
        print(f"run {record.id} {r.status}: {r.error}", file=sys.stderr)
        return 1
    progress.close()
    if launch.distributed and result is not None:  # rank 0 printed its epochs; the outcome is in the store
        print(f"run {result.id}: {result.status}, test acc {(result.result.get('test') or {}).get('accuracy')} "
              f"-> {result.checkpoint}")
        for msg in result.result.get("notes") or []:
            print(f"  note: {msg}")
        return 0 if result.status == "finished" else 1
    if result is None:
        r = store.get(record.id)
        print(f"run {record.id} was {r.status} before it started{': ' + r.error if r.error else ''}", file=sys.stderr)
        return 1
    for r in result.runs:
        print(f"run {r.run_id}: {r.status}, best epoch {r.best_epoch}, test acc {r.test.get('accuracy')}, "
              f"AP {r.test.get('ap')}, {r.images_per_second:.0f} img/s -> {r.checkpoint}")
        for msg in r.notes:
            print(f"  note: {msg}")
    if len(result.runs) > 1:
        print(json.dumps(result.summary, indent=1))
    return 0


def _launch(args: argparse.Namespace):
    """The torchrun launch the flags describe (one process by default); a bad combination is refused here."""
    from detectlab.errors import DetectLabError
    from detectlab.train.distributed import Launch

    n = 1 if args.nproc_per_node is None else args.nproc_per_node
    if args.nnodes is None and (args.node_rank is not None or args.rdzv_endpoint):
        raise DetectLabError("--node-rank and --rdzv-endpoint go with --nnodes M (M machines, each running this "
                             "command with its own --node-rank)")
    return Launch(nproc_per_node=n, nnodes=args.nnodes or 1, node_rank=args.node_rank or 0,
                  rdzv_endpoint=args.rdzv_endpoint or "")


def _check_gpus(name: str, processes: int) -> None:
    """On CUDA each local process takes one GPU: refuse more processes than GPUs before anything is queued."""
    import torch

    from detectlab.config import device
    from detectlab.errors import DetectLabError

    if device(name).type == "cuda" and processes > torch.cuda.device_count():
        raise DetectLabError(f"--nproc-per-node {processes} on --device {name}: one GPU per process, and PyTorch "
                             f"sees {torch.cuda.device_count()}")


def _wait_for_turn(store, run_id: str, poll: float = 0.5) -> bool:
    """Wait until the queued run ``run_id`` may start (no other run executing, older runs first: the app's and
    other terminals'), then claim it for this process. Says what it waits for; Ctrl-C leaves the queue.

    False if the run ended while it waited (cancelled from the app's Train tab)."""
    import time

    from detectlab.runs.store import HEARTBEAT_SECONDS

    shown, beaten = None, time.monotonic()
    try:
        while True:
            store.reap()  # a killed run or a gone terminal's run must not hold the queue
            if store.claim(run_id, os.getpid(), claimant="cli"):
                if shown:
                    print(f"run {run_id}: its turn came; training starts", flush=True)
                return True
            record = store.get(run_id)
            if record.status != "queued":
                print(f"run {run_id} was {record.status} while it waited for its turn"
                      f"{': ' + record.error if record.error else ''}", file=sys.stderr)
                return False
            blocker = store.blocker(run_id, claimant="cli")
            if blocker is not None and blocker.id != shown:
                what = "executing" if blocker.status == "running" else "queued before it"
                print(f"run {run_id} is queued: waiting for run {blocker.id}"
                      f"{' (' + blocker.name + ')' if blocker.name else ''} ({what}) to end — one training runs at "
                      "a time, shared with the app's Train tab; Ctrl-C leaves the queue", flush=True)
                shown = blocker.id
            if time.monotonic() - beaten >= HEARTBEAT_SECONDS:
                store.beat(run_id)  # this terminal still waits: its run is not reaped
                beaten = time.monotonic()
            time.sleep(poll)
    except KeyboardInterrupt:
        store.finish(run_id, "cancelled", error="left the queue before it started (Ctrl-C in its terminal)")
        raise


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``detectlab train``."""
    t = sub.add_parser("train", help="train a detector (flags override the CONFIG json and the preset)")
    t.add_argument("config", nargs="?", help="JSON file with TrainConfig fields")
    t.add_argument("--preset", help="start from a paper's settings: a preset's name or a unique start of it, "
                   "e.g. 'Wimmer 2024'")
    t.add_argument("--data", help="data set folder (default: the embedded demo)")
    t.add_argument("--generators", help="comma-separated generators forming the fake class (default: all)")
    t.add_argument("--arch", help="architecture, see `detectlab models`")
    t.add_argument("--pretrained", help="true, false or a local weight file")
    for key, typ in (("input-size", int), ("epochs", int), ("iterations", int), ("batch-size", int), ("lr", float),
                     ("weight-decay", float), ("seed", int), ("runs", int), ("split-seed", int)):
        t.add_argument(f"--{key}", type=typ, default=None)
    t.add_argument("--no-weighted-sampling", action="store_true")
    t.add_argument("--no-hflip", action="store_true")
    t.add_argument("--augment", type=float, default=None, help="probability of each degradation augmentation")
    t.add_argument("--augment-kinds", help="comma-separated degradations --augment applies to (default: "
                   "blur,jpeg,downsize,patch)")
    t.add_argument("--adv-eps", help="comma-separated FGSM eps list for adversarial training")
    t.add_argument("--part", dest="train_part", default=None, metavar="K/N",
                   help="train on part K of N disjoint parts of the train split (mirror models: 1/2 and 2/2)")
    t.add_argument("--threads", type=int, default=None, help="torch threads (default 2)")
    t.add_argument("--init-from", default=None, metavar="DETECTOR",
                   help="start from this shipped detector's or run's weights (same architecture and input size)")
    t.add_argument("--nproc-per-node", type=int, default=None, metavar="N",
                   help="train data-parallel in N processes on this machine (torchrun + DDP: gloo on the CPU, nccl "
                        "on CUDA, one GPU each); default 1")
    t.add_argument("--nnodes", type=int, default=None, metavar="M",
                   help="machines taking part (run this command on each; needs --rdzv-endpoint)")
    t.add_argument("--node-rank", type=int, default=None, metavar="R", help="this machine's number, 0 to M-1")
    t.add_argument("--rdzv-endpoint", default=None, metavar="HOST:PORT",
                   help="where the machines' ranks meet (c10d rendezvous), the same on every machine")
    t.add_argument("--out-dir", default=None)
    t.add_argument("--name", default=None)
    t.set_defaults(func=_cmd_train)
