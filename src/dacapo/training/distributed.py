"""Data-parallel training on several processes: torch.distributed (DDP), started by torchrun.

``dacapo train CONFIG --nproc N`` runs torchrun in its own process: ``--standalone
--nproc-per-node N -m dacapo.cli train CONFIG`` (`relaunch_with_torchrun`); several nodes are
started by torchrun itself (``--nnodes``, ``--rdzv-endpoint``) or a scheduler (README:
Slurm). Every rank reads its place from torchrun's environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``); the process group uses NCCL on GPUs (one per local rank) and gloo on
the CPU.

Semantics (exact, so that a run is the same on any number of ranks):

- ``trainer_config.batch_size`` is the *global* batch: rank ``r`` of ``W`` draws the
  slots ``r·B/W .. (r+1)·B/W - 1`` of every batch of the one deterministic sample stream
  (`dacapo.training.batches`); ``W`` must divide ``B``;
- the losses are means over equal-sized shares, so DDP's averaged gradient is the
  gradient of the global batch, and the logged loss is the mean over the ranks;
- ``moving_class_counts`` streams belong to slots (no rank waits for another's counts);
  each checkpoint gathers every rank's streams, and a resume hands each rank its slots,
  whatever the world size;
- batch norm (planned configs use it) is synchronised over the ranks on GPUs
  (`SyncBatchNorm`); on CPUs torch cannot, each rank normalises by its own crops and the
  run is not exactly the one-process run (a warning says so);
- only rank 0 writes: run directory, checkpoints, training stats, snapshots, plots and
  validation (the other ranks wait for it, up to `WAIT`);
- a SIGTERM/SIGINT that reaches any rank stops every rank after the same step, with a
  checkpoint (`agreed_signal`, `dacapo.training.stop`); torchrun forwards its own signals
  to the ranks and gives them 30 s before it kills them.
"""

from __future__ import annotations

import datetime
import logging
import os
import sys
from typing import Any, NoReturn

import attr
import torch
import torch.distributed as dist
from torch.distributed import run as torchrun
from torch.distributed.elastic.multiprocessing import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.nn.parallel import DistributedDataParallel

from dacapo.errors import InputError

#: how long ranks wait for each other (rank 0 validates while the others wait)
WAIT = datetime.timedelta(hours=6)

logger = logging.getLogger(__name__)


@attr.s(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = attr.ib(default=0)
    size: int = attr.ib(default=1)
    local_rank: int = attr.ib(default=0)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


def world_from_env() -> World:
    """The world torchrun describes in the environment (one process without it)."""
    env = os.environ
    return World(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)),
                 int(env.get("LOCAL_RANK", 0)))


def start(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group (when torchrun started several processes); the device of
    this rank (``cuda:LOCAL_RANK`` for a CUDA device without an index)."""
    world = world_from_env()
    if not world.active:
        return world, device
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", world.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=WAIT,
                                rank=world.rank, world_size=world.size)
    return world, device


def stop(world: World) -> None:
    if world.active and dist.is_initialized():
        dist.destroy_process_group()


def rank_slots(batch_size: int, world: World) -> range:
    """The slots of each batch this rank draws; InputError when ``W`` does not divide ``B``."""
    if batch_size % world.size:
        raise InputError(
            f"trainer.batch_size: {batch_size} is the global batch and must be divisible by "
            f"the number of processes ({world.size})"
        )
    share = batch_size // world.size
    return range(world.rank * share, (world.rank + 1) * share)


def wrap(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """``model`` in DDP (batch norm synchronised on GPUs); unchanged on one process."""
    if not world.active:
        return model
    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[device.index])
    if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        logger.warning("batch norm on %s: each rank normalises by its own crops (torch "
                       "synchronises batch norm on GPUs only)", device.type)
    return DistributedDataParallel(model)


def mean(value: float, world: World, device: torch.device) -> float:
    """The mean of ``value`` over the ranks."""
    if not world.active:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / world.size


def agreed_signal(signum: int | None, world: World, device: torch.device) -> int | None:
    """The stop signal every rank acts on (`dacapo.training.stop`): the largest any rank has
    received (SIGTERM over SIGINT), None when none has. One all-reduce that every rank
    calls after the same step, so all stop after the same step, whichever ranks the signal
    reached and whenever it arrived during the step."""
    if not world.active:
        return signum
    t = torch.tensor([signum or 0], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item()) or None


def gather(mapping: dict, world: World) -> dict:
    """The union of every rank's ``mapping`` (keys are disjoint: a rank's own streams)."""
    if not world.active:
        return dict(mapping)
    parts: list[Any] = [None] * world.size
    dist.all_gather_object(parts, mapping)
    out: dict = {}
    for part in parts:
        out.update(part)
    return out


def share(value: Any, world: World) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not world.active:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(world: World) -> None:
    if world.active:
        dist.barrier()


def torchrun_arguments(nproc: int, args: list[str]) -> list[str]:
    """torchrun's arguments for ``nproc`` processes on this machine, each ``dacapo ARGS``."""
    return ["--standalone", f"--nproc-per-node={nproc}", "-m", "dacapo.cli", *args]


def torchrun_command(nproc: int, args: list[str]) -> list[str]:
    """torchrun on this machine with ``nproc`` processes, each ``dacapo ARGS``."""
    return [sys.executable, "-m", "torch.distributed.run", *torchrun_arguments(nproc, args)]


def relaunch_with_torchrun(nproc: int, args: list[str]) -> NoReturn:
    """Become torchrun (`torchrun_arguments`, run in this process) and exit with the ranks'
    code: 0, the first failed rank's, or ``128 + signal`` when this process got SIGINT or
    SIGTERM (torchrun forwards it to the ranks, which stop after a step with a checkpoint,
    and waits for them) — one line from rank 0, no traceback of torchrun's. The ranks see
    torchrun's environment and run ``dacapo ARGS`` themselves, ARGS without ``--nproc``,
    which torchrun's own parser would take for its ``--nproc-per-node``."""
    kept, skip = [], False
    for arg in args:
        if skip or arg.startswith("--nproc="):
            skip = False
            continue
        if arg == "--nproc":
            skip = True
            continue
        kept.append(arg)
    try:
        torchrun.main(torchrun_arguments(nproc, kept))
    except SignalException as e:
        sys.exit(128 + int(e.sigval))
    except ChildFailedError as e:
        code = e.get_first_failure()[1].exitcode
        sys.exit(code if code > 0 else 128 - code if code < 0 else 1)
    sys.exit(0)
