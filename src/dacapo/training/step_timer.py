"""A run's training step, timed on this machine (what `dacapo plan` fits its plan to,
`dacapo.planning.step_fit`; unless ``--no-measure``): the network's step (forward, backward, Adam on a real batch; the plan's
precision, channels-last weights and torch threads, as `dacapo train` runs it) and the data
worker's CPU per batch (`dacapo.training.batches.BatchProvider` on the training data).

The cost model (`dacapo.planning.cost_model`) was fitted on one CPU; another ran its
20-minute plans at 0.74-2.26x their budget (docs/quality.md), so the planner checks its
choice here. Timings are cached per machine and plan (`cache_path`): planning the
same data with the same options again gives the same run config on the same machine."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import statistics
import time
from pathlib import Path

import attr
import cattrs
import dask
import torch

from dacapo.experiments.run_config import RunConfig
from dacapo.io.arrays import atomic_write_text
from dacapo.pipeline.precision import channels_last
from dacapo.runs.model_builder import build_model, choose_device
from dacapo.training.batches import BatchProvider
from dacapo.training.loop import train_step
from dacapo.training.optimiser import make_optimizer

logger = logging.getLogger(__name__)

#: network steps timed (their median) after `WARMUP` untimed ones (a run's first steps are
#: its slowest: oneDNN's kernels, the allocator); data batches timed (their mean) after one.
#: Short steps are repeated until `MIN_SECONDS` have been timed (at most `MAX_REPEATS`):
#: five steps of ~0.03 s timed one 2-minute plan's step at 0.04 and, in another timing,
#: 0.07 s
REPEATS = 5
WARMUP = 2
MIN_SECONDS = 2.0
MAX_REPEATS = 100


@attr.s(frozen=True, auto_attribs=True)
class StepTiming:
    """Seconds of one training step's network (wall, the trainer's threads) and CPU seconds
    of the data worker for one batch."""

    network: float
    data: float


def cache_path() -> Path:
    """The timings file: ``$DACAPO_CACHE_DIR``, else ``$XDG_CACHE_HOME/dacapo``, else
    ``~/.cache/dacapo``; ``step_times.json`` there."""
    folder = os.environ.get("DACAPO_CACHE_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dacapo"
    return Path(folder) / "step_times.json"


def machine() -> dict:
    """What makes this machine's step times its own: CPU model, cores, torch and its
    instruction-set cap, the GPU training would run on."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
            "isa": os.environ.get("ONEDNN_MAX_CPU_ISA", ""),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""}


def _key(rc: RunConfig, threads: int) -> str:
    """The cache key of ``rc``'s step on this machine with ``threads`` torch threads."""
    conv = cattrs.Converter()
    parts = {
        "machine": machine(), "threads": threads,
        "timing": [WARMUP, REPEATS, MIN_SECONDS, MAX_REPEATS],
        "architecture": conv.unstructure(rc.architecture_config),
        "task": conv.unstructure(rc.task_config),
        "train": [(d.raw, d.gt) for d in rc.datasplit_config.train],
        "trainer": conv.unstructure(rc.trainer_config),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def measure_step(rc: RunConfig, threads: int) -> StepTiming:
    """``rc``'s training step on this machine with ``threads`` torch threads: from the cache
    when timed before, else timed (the median of `REPEATS` network steps after `WARMUP`,
    the data worker's mean CPU over `REPEATS` batches after one; short steps and batches
    repeated up to `MIN_SECONDS` each) and cached."""
    path, key = cache_path(), _key(rc, threads)
    cache = _read(path)
    if key in cache:
        return StepTiming(**cache[key])
    timing = _time(rc, threads)
    cache = _read(path)  # another plan may have written meanwhile
    cache[key] = attr.asdict(timing)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(cache, indent=1, sort_keys=True))
    except OSError as e:  # a read-only home: the plan stands, it is not cached
        logger.warning("could not cache the step timing in %s: %s", path, e)
    return timing


def _read(path: Path) -> dict:
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def _repeated(run, clock, warmup: int = 0) -> list[float]:
    """Durations by ``clock`` of calls ``run(i)``, i = 0, 1, ...: ``warmup`` calls, then
    `REPEATS`, then more until `MIN_SECONDS` are timed (at most `MAX_REPEATS`); those
    after the warm-up."""
    times: list[float] = []
    while (len(times) < warmup + REPEATS or (sum(times[warmup:]) < MIN_SECONDS
                                             and len(times) < warmup + MAX_REPEATS)):
        start = clock()
        run(len(times))
        times.append(clock() - start)
    return times[warmup:]


def _time(rc: RunConfig, threads: int) -> StepTiming:
    provider = BatchProvider(rc)
    with dask.config.set(scheduler="synchronous"):
        batch = provider[0]  # warm-up: opens the arrays
        data = statistics.mean(_repeated(lambda i: provider[i + 1], time.process_time))
    device = choose_device(None)  # where `dacapo train` will run
    task = rc.task_config.build()
    model = channels_last(build_model(rc, task).to(device), rc.architecture_config.dims)
    optimizer = make_optimizer(model, rc.trainer_config)
    tensors = [torch.as_tensor(batch[k]).to(device) for k in ("raw", "target", "weight")]

    def step(_: int) -> None:
        train_step(model, optimizer, task.loss, *tensors, rc.trainer_config.precision)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        network = statistics.median(_repeated(step, time.perf_counter, WARMUP))
    finally:
        torch.set_num_threads(before)
    return StepTiming(network, data)
