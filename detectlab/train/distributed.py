"""Data-parallel training on PyTorch's own engine: torchrun's elastic agent starts one process per rank,
each runs the same ``train(cfg)``, and ``DistributedDataParallel`` all-reduces the gradients.

What a rank does differently from one process, all of it here:

- the process group (``init``): gloo on the CPU, nccl on CUDA with one GPU per local rank;
- the batches (``Dist.share``): every rank draws the same global batch of ``world x batch_size``
  indices (and their flips) from the same seeded generator and trains on its own contiguous share,
  so N ranks with batch B take the steps of one process with batch N*B (DDP averages the
  gradients of the shares; batch-norm statistics stay per rank, as in plain DDP);
- cancel (``CancelSync``): only rank 0 reads the run's cancel flag; ranks agree on it with one
  all-reduce at fixed points (before training, at every step, at the end), so every rank stops at
  the same step and no collective is left waiting.

Validation, the test split, checkpoints, history and progress are rank 0's alone (the other
ranks wait at their next agreement meanwhile): the numbers are one process's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from detectlab.progress import Cancelled, CancelToken


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: its global rank, the number of ranks and its rank on this machine."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one that validates, tests and writes."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def share(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous share of a global batch (its length a multiple of ``world``)."""
        n = len(idx) // self.world
        return idx[self.rank * n : (self.rank + 1) * n]


#: One process, no process group.
SINGLE = Dist()


def current() -> Dist:
    """The running process group's ``Dist`` (``SINGLE`` outside one)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return SINGLE


def rank_device(name: str | None, local_rank: int = 0) -> torch.device:
    """The device a rank trains on: ``config.device(name)``, a CUDA device per local rank."""
    from detectlab.config import device
    from detectlab.errors import DetectLabError

    dev = device(name)
    if dev.type == "cuda":
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
        if dev.index >= torch.cuda.device_count():
            raise DetectLabError(f"local rank {local_rank} has no GPU: PyTorch sees {torch.cuda.device_count()} "
                                 f"(run at most that many processes per machine on --device cuda)")
        torch.cuda.set_device(dev)
    return dev


def init(device_name: str | None) -> tuple[Dist, torch.device]:
    """Join the process group of a torchrun worker (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, the agent's
    store in the environment): gloo on the CPU, nccl on CUDA."""
    import torch.distributed as dist

    dev = rank_device(device_name, int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return current(), dev


def wrap(module: torch.nn.Module, d: Dist, dev: torch.device) -> torch.nn.Module:
    """``module`` in ``DistributedDataParallel`` on more than one rank (collective: every rank calls it)."""
    if not d.active:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[dev.index] if dev.type == "cuda" else None)


def mean(value: torch.Tensor, d: Dist) -> float:
    """The mean of a scalar over the ranks (collective), e.g. the global batch's loss."""
    if not d.active:
        return float(value.detach())
    import torch.distributed as dist

    t = value.detach().reshape(1).float().clone()
    dist.all_reduce(t)
    return float(t) / d.world


class CancelSync(CancelToken):
    """The cancel token the training steps check: on one process, ``token`` itself; on several, cancelled
    only once the ranks agreed (``agree``), so no rank leaves a step the others are still in.

    ``token`` is rank 0's real token (the run's cancel flag); the other ranks pass one never set.
    """

    def __init__(self, token: CancelToken, d: Dist, dev: torch.device | None = None) -> None:
        super().__init__()
        self.token, self.dist, self._dev = token, d, dev or torch.device("cpu")

    @property
    def cancelled(self) -> bool:
        return self.token.cancelled if not self.dist.active else super().cancelled

    def check(self) -> None:
        if not self.dist.active:
            self.token.check()
        elif super().cancelled:
            raise Cancelled("cancelled by user")

    def _all_max(self, flag: bool) -> bool:
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0], device=self._dev)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def agree(self) -> None:
        """Collective: raise ``Cancelled`` on every rank if rank 0's token is set."""
        if not self.dist.active:
            self.token.check()
            return
        if super().cancelled:
            raise Cancelled("cancelled by user")
        if self._all_max(self.token.cancelled):
            self.cancel()
            raise Cancelled("cancelled by user")

    def tell(self) -> None:
        """Rank 0 stopped on a cancel in work only it does (decoding, validation, the test split): its one
        last collective meets the others' pending ``agree``, which then raises there. A no-op once agreed."""
        if self.dist.active and not super().cancelled:
            self.cancel()
            self._all_max(True)


def network_arch(arch: str) -> bool:
    """True for detectors trained end to end (CNNs, ViTs): the ones DDP spreads over ranks. Frozen-backbone
    heads (cached features, seconds) and closed-form fits train on rank 0 alone."""
    from detectlab.models import detector_entry

    entry = detector_entry(arch)
    return not arch.startswith("frozen:") and (entry is None or entry.family not in ("frozen", "ensemble", "spectrum"))


@dataclass(frozen=True)
class Launch:
    """Where a run's ranks run, as torchrun names it: ``nproc_per_node`` processes on each of ``nnodes``
    machines, which meet at ``rdzv_endpoint`` (c10d rendezvous; on one machine, a free local port).

    c10d numbers the machines itself (``node_rank`` is checked and shown, as torchrun does); global rank 0
    runs on one of them, and that machine's run history keeps the run."""

    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str = ""

    def __post_init__(self) -> None:
        from detectlab.errors import DetectLabError

        for name, low in (("nproc_per_node", 1), ("nnodes", 1), ("node_rank", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise DetectLabError(f"--{name.replace('_', '-')} must be an integer >= {low}, got {value!r}")
        if self.nproc_per_node > 64:
            raise DetectLabError(f"--nproc-per-node must be at most 64, got {self.nproc_per_node}")
        if self.node_rank >= self.nnodes:
            raise DetectLabError(f"--node-rank {self.node_rank} needs --nnodes above it (machines are numbered "
                                 f"0 to nnodes - 1; --nnodes is {self.nnodes})")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise DetectLabError(f"--nnodes {self.nnodes} needs --rdzv-endpoint HOST:PORT, the same on every machine "
                                 "(where their ranks meet; e.g. the first machine's address and port 29500)")
        if self.rdzv_endpoint:
            host, sep, port = self.rdzv_endpoint.rpartition(":")
            if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise DetectLabError(f"--rdzv-endpoint must be HOST:PORT with a port in 1-65535, got "
                                     f"{self.rdzv_endpoint!r}")

    @property
    def distributed(self) -> bool:
        return self.nproc_per_node * self.nnodes > 1


@dataclass
class RankFailure:
    """One rank that ended badly, as torchrun's elastic agent saw it."""

    rank: int
    local_rank: int
    pid: int
    exitcode: int                       # negative: the signal that ended it
    message: str


class RanksFailed(Exception):
    """A rank of the launch ended badly; the agent stopped the others. ``failures``: root cause first (a rank
    ended by a signal, then one that raised; ranks the agent stopped with SIGTERM last)."""

    def __init__(self, failures: list[RankFailure]) -> None:
        super().__init__("; ".join(f"rank {f.rank}: exit {f.exitcode}" for f in failures))
        self.failures = failures


def run_ranks(launch: Launch, argv: list[str], run_id: str) -> None:
    """Start ``python argv...`` once per local rank through torchrun's elastic agent (``elastic_launch``, the
    API behind ``python -m torch.distributed.run``), c10d rendezvous, no restarts; wait for all of them.

    Raises ``RanksFailed`` when a rank fails (the agent then stops the others). The agent handles SIGTERM
    here by stopping its ranks first."""
    import sys
    import uuid

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=launch.nnodes, max_nodes=launch.nnodes, nproc_per_node=launch.nproc_per_node,
        run_id=f"detectlab-{run_id}" if launch.nnodes == 1 else "detectlab", rdzv_backend="c10d",
        # one machine: torchrun --standalone's free local port; several: the shared endpoint
        rdzv_endpoint=launch.rdzv_endpoint or "localhost:0", max_restarts=0, monitor_interval=0.5)
    if launch.nnodes == 1 and not launch.rdzv_endpoint:
        config.run_id = f"detectlab-{run_id}-{uuid.uuid4().hex[:8]}"
    try:
        elastic_launch(config, sys.executable)(*argv)
    except ChildFailedError as exc:
        failures = [RankFailure(rank, f.local_rank, f.pid, f.exitcode, _failure_message(f.message))
                    for rank, f in exc.failures.items()]
        # the root cause first: a rank killed by a signal, then one that raised; the agent's SIGTERM to the
        # others (and their lost-peer errors) comes last
        failures.sort(key=lambda f: (f.exitcode == -15, f.exitcode >= 0, exc.failures[f.rank].timestamp, f.rank))
        raise RanksFailed(failures) from None


def _failure_message(message) -> str:
    """The error a rank's error file holds (``@record``), or the agent's line for a signal."""
    if isinstance(message, dict):
        message = message.get("message", "")
    text = str(message or "").strip()
    return "" if text.startswith("To enable traceback") else text.splitlines()[-1] if text else ""
