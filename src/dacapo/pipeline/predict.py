"""Blockwise model prediction of a raw volume into a float32 zarr array.

Each block's output is the model's eval-mode output (activation applied) for an input of
``eval_input_shape`` voxels; the input is read with context ``(input − output) / 2`` (world
units) around the block. The ``padding`` option says what the context is beyond the raw:

- ``"reflect"`` (the run's default): the raw mirrored at its border; the prediction covers
  the whole raw ROI (or the requested ``roi`` inside it), so a crop smaller than the
  model's input + context is still predicted whole;
- ``"zero"``: zeros beyond the raw, also the whole ROI;
- ``"none"``: only where the model sees real context: the raw ROI shrunk by the context
  (a valid-padding UNet cannot see beyond the border).

The ROI is snapped to the output voxel grid; blocks at the far end overhang and are
clipped. The forward pass runs with the ``engine`` and ``precision`` options
(`dacapo.pipeline.engines`: by default the fastest exact engine measured for the kind of
network). One forward path (`dacapo.pipeline.predict_blocks`) serves both ways of running,
chosen in one place (`prediction_mode`) from the workers option (`PredictOptions`):

- 0 workers: the blocks in this process (`predict_in_process`: no worker start-up, the
  next block's read and the previous block's write overlap the forward pass; what
  validation during training uses), from the checkpoint with the runner's done-markers
  when a ``log_dir`` is given;
- N ≥ 1 workers: on the daisy runner (`dacapo.blockwise.run_blockwise`, done-markers: a
  killed job re-run skips finished blocks); every worker process builds the model from the
  run's configs and loads the checkpoint once, with ``cpu_count // N`` torch threads, and
  reads the raw itself (so an OME-NGFF raw works).
"""

from __future__ import annotations

import functools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attr
import numpy as np
from funlib.geometry import Roi
from funlib.persistence import Array
from tqdm import tqdm

from dacapo.blockwise import run_blockwise
from dacapo.blockwise.grid import BlockPlan, plan_blocks
from dacapo.blockwise.progress import BlockProgress
from dacapo.errors import InputError
from dacapo.experiments.normalization import for_array
from dacapo.experiments.tta import FlipPlan, flip_plan
from dacapo.io.array_checks import check_finite_array
from dacapo.io.arrays import open_array
from dacapo.io.ome_write import prepare_ome  # outputs are OME-NGFF images
from dacapo.io.paths import check_output
from dacapo.io.rewrite import renew_output
from dacapo.pipeline.engines import export_onnx, make_forward, onnx_cache_path, resolve_engine
from dacapo.pipeline.model_geometry import ModelGeometry, block_rois, prediction_roi
from dacapo.pipeline.predict_blocks import PredictSpec, block_input, block_output, worker_block
from dacapo.pipeline.predict_options import PredictOptions
from dacapo.runs.model_builder import build_model, choose_device, load_weights

logger = logging.getLogger(__name__)


@attr.s(frozen=True, auto_attribs=True)
class PredictionMode:
    """How a prediction runs (`prediction_mode`)."""

    workers: int  #: 0: in this process
    from_checkpoint: bool  #: the weights are read from the checkpoint (else a given model's)
    markers: bool  #: the runner's done-markers are written (a re-run resumes)


def prediction_mode(options: PredictOptions, model=None) -> PredictionMode:
    """The one place where the way a prediction runs is decided (module docstring): with
    0 workers in this process — with ``model`` when one is given (its weights may differ
    from any file: no done-markers, no ONNX cache), else with the checkpoint's and, given a
    ``log_dir``, the done-markers; with N ≥ 1 workers on the runner, every worker loading
    the checkpoint (a given model is not used), always with done-markers."""
    workers = options.workers
    from_checkpoint = model is None or workers > 0
    return PredictionMode(workers, from_checkpoint,
                          workers > 0 or (from_checkpoint and options.log_dir is not None))


def predict_in_process(model, raw: Array, output, out_roi: Roi, geometry: ModelGeometry,
                       options: PredictOptions, onnx_cache: Path | None = None,
                       normalization=None, flips: FlipPlan | None = None,
                       plan: BlockPlan | None = None
                       ) -> None:
    """Predict every block of ``out_roi`` with ``model`` here and write it to ``output``
    (``options``: padding, engine, precision, progress bar; resolved for the run).

    Three stages overlap: while the forward pass of a block runs, a reader thread reads and
    normalises the next block's raw and a writer thread writes the previous block's output
    (at most one block in each stage). With ``plan`` (`dacapo.blockwise.grid.plan_blocks`
    of the output), blocks already marked done are skipped and each block is marked done
    after its write, as on the daisy workers (a killed run re-run continues where it
    stopped)."""
    was_training = model.training
    if plan is None:
        blocks = [(None, roi) for roi in block_rois(out_roi, geometry.output_size)]
    else:
        todo = sorted(set(plan.blocks) - plan.done_ids())
        blocks = [(i, plan.blocks[i].write_roi) for i in todo]

    def read(write_roi: Roi) -> np.ndarray:
        return block_input(raw, write_roi, geometry, options.padding, normalization)

    def write(block_id: int | None, write_roi: Roi, y: np.ndarray) -> None:
        target = write_roi.intersect(out_roi)
        rel = (target - write_roi.offset) / geometry.output_voxel_size
        y = y[(slice(None),) + rel.to_slices()]
        output[target] = y if output.channel_dims else y[0]  # 1 channel: no channel axis
        if block_id is not None:
            plan.markers.mark(block_id)

    total = len(blocks) if plan is None else len(plan.blocks)
    progress = BlockProgress("predict" if plan is None else plan.task_id, total,
                             total - len(blocks), options.notices)
    try:
        with ThreadPoolExecutor(max_workers=1) as reader, \
                ThreadPoolExecutor(max_workers=1) as writer:
            ahead = reader.submit(read, blocks[0][1]) if blocks else None  # during the set-up
            model_forward = make_forward(model, options.engine, options.precision,
                                         cache=onnx_cache)
            pending = None
            for k, (block_id, write_roi) in enumerate(
                    tqdm(blocks, desc="predict", disable=not options.progress,
                         dynamic_ncols=True, leave=False)):
                data = ahead.result()
                if k + 1 < len(blocks):
                    ahead = reader.submit(read, blocks[k + 1][1])
                y = block_output(model_forward, data, write_roi, geometry, flips)
                if pending is not None:
                    pending.result()  # a failed write raises here
                    progress.update(total - len(blocks) + k)
                pending = writer.submit(write, block_id, write_roi, y)
            if pending is not None:
                pending.result()
                progress.update(total)
    finally:
        model.train(was_training)


def _load_model(run_config, checkpoint):
    """The checkpoint's model on the run's device."""
    if checkpoint is None:
        raise InputError("predicting on workers (num_workers >= 1) needs the checkpoint")
    model = load_weights(build_model(run_config), checkpoint)
    return model.to(choose_device(run_config.device))


def _check_channels(model, raw: Array, raw_path) -> None:
    """InputError unless ``raw`` has the model's spatial dimensions and input channels."""
    dims = len(model.eval_input_shape)
    if raw.voxel_size.dims != dims:
        raise InputError(
            f"raw {str(raw_path)!r} has {raw.voxel_size.dims} spatial dimensions; the run's "
            f"model takes {dims}D input (input shape {tuple(model.eval_input_shape)})"
        )
    if model.num_in_channels != (1 if len(raw.shape) == raw.voxel_size.dims else raw.shape[0]):
        raise InputError(
            f"raw {str(raw_path)!r} has shape {tuple(raw.shape)}; the model expects "
            f"{model.num_in_channels} input channel(s)"
        )


def _prepare_output(output_path, raw: Array, raw_path, model, geometry: ModelGeometry,
                    out_roi: Roi):
    """The OME-NGFF float32 prediction image (space checked first)."""
    spatial_names = list(raw.axis_names[len(raw.axis_names) - raw.voxel_size.dims :])
    voxels = int(np.prod(out_roi.shape / geometry.output_voxel_size))
    check_output(output_path, {"raw": raw_path}, 4 * model.num_out_channels * voxels)
    return prepare_ome(
        output_path, total_roi=out_roi, voxel_size=geometry.output_voxel_size, dtype=np.float32,
        num_channels=model.num_out_channels, write_size=geometry.output_size,
        axis_names=spatial_names, units=list(raw.units) if raw.units else None,
    )


def _on_workers(model, run_config, checkpoint, raw_path, output_path, geometry: ModelGeometry,
                options: PredictOptions, cache: Path | None, workers: int) -> None:
    """Predict on the daisy runner, every worker building the model from the checkpoint."""
    if options.engine == "onnx":  # exported once here; the workers read the cached file
        input_shape = (1, model.num_in_channels, *model.eval_input_shape)
        export_onnx(model.eval(), input_shape, cache)
    spec = PredictSpec(run_config, str(Path(checkpoint).absolute()),
                       str(Path(raw_path).absolute()), options.padding,
                       max(1, (os.cpu_count() or 1) // workers), options.engine,
                       options.precision, None if cache is None else str(cache))
    run_blockwise(functools.partial(worker_block, spec), inputs={}, output=output_path,
                  block_size=geometry.output_size, context=geometry.context, options=options,
                  fit="overhang")


def predict(
    run_config,
    checkpoint: str | Path | None,
    raw_path: str | Path,
    output_path: str | Path,
    options: PredictOptions | None = None,
    *,
    roi: Roi | None = None,
    model=None,
    check_raw: bool = True,
) -> Array:
    """Predict ``raw_path`` with the model of ``run_config`` at ``checkpoint``.

    ``options`` (`PredictOptions`; None fields: the run's): workers (how they choose the
    way of running: `prediction_mode`), padding, engine, precision, ``log_dir`` /
    ``task_id`` (default ``predict``) of the done-markers, progress bar. ``model``: the
    checkpoint's model already in memory (used in this process; ``checkpoint`` may then be
    None). ``check_raw=False`` skips the scan of the raw for NaN/Inf (for a caller that has
    scanned it already). ``roi`` limits the prediction. Writes ``output_path`` (an OME-NGFF
    image, float32, channels first; one channel: no channel axis) and returns it opened
    read-only.
    """
    options = (options or PredictOptions()).for_run(run_config)
    options.check()
    options = attr.evolve(options, task_id=options.task_id or "predict")
    mode = prediction_mode(options, model)
    check_output(output_path, {"raw": raw_path})
    raw = open_array(raw_path, "raw")
    if check_raw:
        check_finite_array(raw, f"raw {str(raw_path)!r}")
    run_config = attr.evolve(run_config, normalization=for_array(
        run_config.normalization, raw, f"raw {str(raw_path)!r}"))  # each array's own: once here
    if mode.from_checkpoint:  # also when workers predict: a corrupt checkpoint fails once, here
        model = _load_model(run_config, checkpoint)
    _check_channels(model, raw, raw_path)
    geometry = ModelGeometry(model, raw.voxel_size, model.eval_input_shape)
    out_roi = prediction_roi(raw.roi, geometry, roi, options.padding)
    cache = onnx_cache_path(checkpoint, model.eval_input_shape) if mode.from_checkpoint else None
    blocks = int(np.prod([-(-s // b) for s, b in zip(out_roi.shape, geometry.output_size)]))
    options = attr.evolve(options, engine=resolve_engine(
        options.engine, options.precision, next(model.parameters()).device, blocks,
        cached=cache is not None and cache.is_file(), input_shape=model.eval_input_shape))
    output = _prepare_output(output_path, raw, raw_path, model, geometry, out_roi)
    logger.info("predicting %s -> %s (ROI %s, blocks %s, context %s, %s)", raw_path,
                output_path, out_roi, geometry.output_size, geometry.context,
                f"{mode.workers} workers" if mode.workers else "in this process")
    if mode.workers:
        _on_workers(model, run_config, checkpoint, raw_path, output_path, geometry, options,
                    cache, mode.workers)
        return open_array(output_path, "prediction")
    plan = None
    if mode.markers:  # the workers' block layout and done-markers: a re-run resumes
        plan = plan_blocks({}, output_path, geometry.output_size, geometry.context, None,
                           options.log_dir, options.task_id, "overhang", parallel=False)
        logger.info("task %s: %d blocks (%d already done) in this process, logs in %s",
                    options.task_id, len(plan.blocks), len(plan.done_ids()), plan.task_dir)
    else:  # written whole, no done-markers
        renew_output(output_path)
    predict_in_process(model, raw, output, out_roi, geometry, options, cache,
                       run_config.normalization, flip_plan(run_config), plan)
    return open_array(output_path, "prediction")
