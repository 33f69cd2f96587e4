"""Training: the loop over batches, checkpoints, resume, validation and snapshots.

Batches and data worker processes: `dacapo.training.batches`; snapshots (every
``snapshot_interval``): `dacapo.training.snapshots`.

Checkpoints and resume
    Every ``checkpoint_interval`` iterations (and at the end, and before each validation)
    ``checkpoints/<iteration>.pt`` holds model and optimiser state, written atomically. A
    re-run of the same config resumes from the latest checkpoint: rows of
    ``training_stats.csv`` after it are dropped and training continues with batch
    ``latest``, so an interrupted run reproduces an uninterrupted one (same batches, same
    weights, same class counts: the same losses). A validation the interruption cut short
    (its checkpoint exists, its scores do not) is done first. Every start says where it
    starts ("resuming NAME from iteration N (checkpoint ...)" or "starting NAME at
    iteration 0 (no checkpoint)"), a notice (`dacapo.training.progress`).

Stopping
    SIGTERM or SIGINT (a scheduler's pre-emption, Ctrl-C) ends the step under way, writes
    its checkpoint and raises `TrainingStopped` (`dacapo.training.stop`), so that nothing
    is lost and a re-run continues from there.

Data parallel
    Started by torchrun (``dacapo train CONFIG --nproc N``), every rank trains its share
    of each batch and only rank 0 writes (`dacapo.training.distributed`); a run resumes on any
    number of processes that divides ``batch_size``, with the same batches.
"""

from __future__ import annotations

import functools
import logging
import math
import pickle
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, NoReturn

import torch

from dacapo.errors import InputError
from dacapo.experiments.normalization import with_statistics
from dacapo.experiments.run_config import RunConfig
from dacapo.ops.schedule import set_learning_rate
from dacapo.pipeline.precision import autocast, channels_last
from dacapo.pipeline.predict_options import PredictOptions
from dacapo.pipeline.validate import validate_run
from dacapo.runs.log_file import log_to_file
from dacapo.runs.model_builder import build_model, choose_device
from dacapo.runs.plots import safe_plot_run
from dacapo.runs.run_dir import RunDir, prepare_run_dir
from dacapo.runs.tensorboard_log import TensorBoardTracker
from dacapo.runs.tracking import Tracker, Trackers
from dacapo.runs.verify import normalization_problems, run_problems
from dacapo.training import distributed
from dacapo.training.batches import BatchProvider, close_loader, make_loader
from dacapo.training.optimiser import make_optimizer, make_scaler
from dacapo.training.progress import NOTICE, Progress
from dacapo.training.snapshots import write_snapshot
from dacapo.training.stop import GracefulStop, TrainingStopped

logger = logging.getLogger(__name__)


def train_step(model, optimizer, loss, raw, target, weight, precision: str = "fp32",
               scaler=None) -> tuple[float, torch.Tensor]:
    """One optimiser step on tensors already on the model's device; (loss, prediction).

    The forward pass runs in ``precision`` (`dacapo.pipeline.precision.autocast`), the loss in fp32;
    ``scaler`` (fp16) scales the loss for the backward pass."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    with autocast(precision, raw.device):
        prediction = model(raw)
    prediction = prediction.float()
    value = loss.compute(prediction, target, weight)
    if scaler is None:
        value.backward()
        optimizer.step()
    else:
        scaler.scale(value).backward()
        scaler.step(optimizer)
        scaler.update()
    return float(value.detach()), prediction.detach()


def train_run(
    run_config: RunConfig,
    root: str | Path = "runs",
    progress: bool = True,
    validate: bool = True,
    progress_lines: bool = True,
    trackers: Sequence[Tracker] = (),
) -> RunDir:
    """Train (or resume) ``run_config`` in ``<root>/<name>``; validate at the intervals.

    ``progress``: a progress bar; without one, the progress lines (`dacapo.training.progress`)
    are notices (``dacapo`` shows them at default verbosity) unless ``progress_lines`` is
    False. TensorBoard event files are written always (`dacapo.runs.tensorboard_log`),
    ``trackers`` (`dacapo.runs.tracking`: MLflow, `dacapo.runs.mlflow_log`) are told
    too. Returns the run directory. Raises ValueError for a config or data problem,
    `TrainingStopped` after a SIGTERM/SIGINT (its checkpoint written).
    """
    problems = run_problems(run_config, strict_task=False, normalization=False)
    if problems:
        raise InputError("; ".join(problems))
    # normalisation statistics, stored in run.yaml; every rank computes the same ones. The
    # normalisation check of verify, on the completed config: the training raw read once
    try:
        run_config = with_statistics(run_config)
    except ValueError as e:  # a constant training raw: verify's message
        raise InputError(str(e)) from None
    problems = normalization_problems(run_config)
    if problems:
        raise InputError("; ".join(problems))
    world, device = distributed.start(choose_device(run_config.device))
    try:
        slots = distributed.rank_slots(run_config.trainer_config.batch_size, world)
        if world.main:
            run_dir = prepare_run_dir(run_config, root)
        distributed.barrier(world)  # the others open the run directory rank 0 prepared
        if not world.main:
            run_dir = RunDir(Path(root) / run_config.name)
        bar = functools.partial(Progress, bar=progress and world.main,
                                notices=progress_lines and world.main)
        tracking = Trackers(run_dir, [TensorBoardTracker(), *trackers] if world.main else [])
        with log_to_file(run_dir.logs / "train.log") if world.main else nullcontext(), \
                GracefulStop() as stop, tracking:
            _train(run_config, run_dir, bar, validate, world, device, slots, stop, tracking)
    finally:
        distributed.stop(world)
    return run_dir


def _train(run_config: RunConfig, run_dir: RunDir, progress, validate: bool,
           world: distributed.World, device: torch.device, slots: range,
           stop: GracefulStop, tracking: Trackers) -> None:
    """The run on this rank; ``progress(name, start, total)`` makes its `Progress`."""
    rc = run_config
    tc = rc.trainer_config
    task = rc.task_config.build()
    # channels-last weights: oneDNN's fastest convolutions (`dacapo.pipeline.precision`)
    module = channels_last(build_model(rc, task).to(device), rc.architecture_config.dims)
    optimizer = make_optimizer(module, tc)
    scaler = make_scaler(tc.precision, device)
    model = distributed.wrap(module, world, device)

    layout = [max(1, tc.num_data_workers), tc.batch_size]  # count streams (`dacapo.training.batches`)
    counts: dict[tuple[int, int], Any] = {}  # this rank's streams

    def checkpoint(iteration: int) -> None:  # every rank calls it: the counts are gathered
        every = distributed.gather(counts, world)
        if world.main:
            tracking.flush()  # steps up to a checkpoint are never lost to a tracker
            run_dir.save_checkpoint(iteration, {
                "model": module.state_dict(), "optimizer": optimizer.state_dict(),
                # pickled: the checkpoint stays loadable with torch.load(weights_only=True)
                "class_counts": pickle.dumps(every), "count_streams": layout,
                **({"scaler": scaler.state_dict()} if scaler is not None else {}),
            })

    def validate_at(iteration: int) -> None:
        if world.main:
            # the live model predicts when validation runs in this process (0 workers)
            rows = validate_run(run_dir, iteration, PredictOptions(progress=False, lines=False),
                                run_config=rc, model=module)
            tracking.validation(iteration, rows)
        distributed.barrier(world)

    start, restored = _resume(rc.name, run_dir, world, module, optimizer, scaler, layout, slots)
    counts.update(restored)
    tracking.start(rc, start)
    if start == 0:
        checkpoint(0)
    if world.main:
        run_dir.truncate_training_stats(start)
    if validate and _validation_cut_short(rc, run_dir, start):
        logger.info("validating iteration %d, missing from an interrupted run", start)
        validate_at(start)
    if start >= rc.num_iterations:
        if world.main:
            logger.info("%s: already trained for %d iterations", rc.name, start, extra=NOTICE)
        return

    provider = BatchProvider(rc, with_snapshot_every=rc.snapshot_interval if world.main else 0,
                             initial_counts=counts, slots=slots)
    loader = make_loader(provider, start, rc.num_iterations, tc.num_data_workers)
    default_threads = torch.get_num_threads()
    step_threads = tc.torch_threads or default_threads
    bar = progress(rc.name, start, rc.num_iterations)
    batches = iter(loader)
    try:
        torch.set_num_threads(step_threads)
        for batch in batches:
            iteration = int(batch["iteration"]) + 1
            counts.update(pickle.loads(batch["counts"]))
            loss_value, prediction = _fit_batch(batch, iteration, model, optimizer, task.loss,
                                                rc, scaler, world, device)
            _record_step(run_dir, world, bar, iteration, loss_value, tracking,
                         optimizer.param_groups[0]["lr"])
            if "snapshot" in batch:
                write_snapshot(run_dir, iteration, batch["snapshot"], prediction[0].cpu().numpy())
            validating = validate and rc.validation_interval and iteration % rc.validation_interval == 0
            signum = distributed.agreed_signal(stop.signum, world, device)  # all ranks, each step
            if (signum or iteration % rc.checkpoint_interval == 0 or iteration == rc.num_iterations
                    or validating):
                checkpoint(iteration)
            if signum:  # a validation due now is done first by the re-run
                stop.decide()
                _stopped(rc, run_dir, world, signum, iteration)
            if validating:
                _validate_paused(validate_at, iteration, bar, default_threads, step_threads)
    finally:
        torch.set_num_threads(default_threads)
        bar.close()
        close_loader(batches)
    if world.main:
        safe_plot_run(run_dir)


def _validate_paused(validate_at, iteration: int, bar: Progress, default_threads: int,
                     step_threads: int) -> None:
    """``validate_at(iteration)`` between two steps: the bar cleared meanwhile, torch at
    its ``default_threads`` (the data workers wait), then back to ``step_threads``."""
    bar.clear()
    torch.set_num_threads(default_threads)
    validate_at(iteration)
    torch.set_num_threads(step_threads)
    bar.refresh()


def _stopped(rc: RunConfig, run_dir: RunDir, world: distributed.World, signum: int,
             iteration: int) -> NoReturn:
    """Raise `TrainingStopped` for the checkpoint of ``iteration``, said in a notice."""
    stopped = TrainingStopped(signum, iteration, rc.num_iterations,
                              run_dir.checkpoint_path(iteration))
    if world.main:
        logger.info("%s: %s", rc.name, stopped, extra=NOTICE)
    raise stopped


def _resume(name: str, run_dir: RunDir, world: distributed.World, module, optimizer, scaler,
            layout: list[int], slots: range) -> tuple[int, dict[tuple[int, int], Any]]:
    """(iteration, this rank's class counts) of the latest intact checkpoint, its model,
    optimiser and scaler state loaded; (0, {}) for a fresh run. Every rank calls it."""
    counts: dict[tuple[int, int], Any] = {}
    start, state = run_dir.latest_intact_checkpoint() if world.main else (None, None)
    start = distributed.share(start or 0, world)
    if start > 0:
        state = state if world.main else run_dir.load_checkpoint(start)
        module.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        if state.get("count_streams") == layout:
            counts = {k: v for k, v in pickle.loads(state["class_counts"]).items()
                      if k[1] in slots}
        else:
            logger.info("num_data_workers or batch_size changed: class counts start afresh")
    if world.main and start > 0:
        logger.info("resuming %s from iteration %d (checkpoint %s)", name, start,
                    run_dir.checkpoint_path(start), extra=NOTICE)
    elif world.main:
        logger.info("starting %s at iteration 0 (no checkpoint)", name, extra=NOTICE)
    return start, counts


def _validation_cut_short(rc: RunConfig, run_dir: RunDir, start: int) -> bool:
    """Whether the run was stopped during (or right before) the validation of ``start``:
    a validation iteration whose checkpoint exists and whose scores do not."""
    return bool(start > 0 and rc.validation_interval and start % rc.validation_interval == 0
                and start not in {r["iteration"] for r in run_dir.validation_scores()})


def _fit_batch(batch: dict, iteration: int, model, optimizer, loss, rc: RunConfig, scaler,
               world: distributed.World, device: torch.device) -> tuple[float, torch.Tensor]:
    """`train_step` on ``batch`` moved to ``device`` at the learning rate of ``iteration``;
    (loss averaged over the ranks, prediction). FloatingPointError when the loss is not
    finite."""
    raw = batch["raw"].to(device, non_blocking=True)
    target = batch["target"].to(device, non_blocking=True)
    weight = batch["weight"].to(device, non_blocking=True)
    tc = rc.trainer_config
    set_learning_rate(optimizer, tc, iteration - 1, rc.num_iterations)
    loss_value, prediction = train_step(model, optimizer, loss, raw, target, weight,
                                        tc.precision, scaler)
    loss_value = distributed.mean(loss_value, world, device)
    if not math.isfinite(loss_value):
        raise FloatingPointError(
            f"loss is {loss_value} at iteration {iteration}; lower the learning rate "
            "or check the data"
        )
    return loss_value, prediction


def _record_step(run_dir: RunDir, world: distributed.World, bar: Progress, iteration: int,
                 loss_value: float, tracking: Trackers, learning_rate: float) -> None:
    """The step's row of ``training_stats.csv`` (rank 0), its trackers and the progress."""
    if world.main:
        elapsed = bar.elapsed()
        run_dir.append_training_stats(
            [{"iteration": iteration, "loss": f"{loss_value:.6g}", "time": f"{elapsed:.3f}"}]
        )
        tracking.step(iteration, loss_value, learning_rate, elapsed)
    bar.step(iteration, loss_value)
