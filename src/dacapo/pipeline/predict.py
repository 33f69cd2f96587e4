"""Blockwise model prediction of a raw volume into a float32 zarr array.

Each block's output is the model's eval-mode output (activation applied) for an input of
``eval_input_shape`` voxels; the input is read with context ``(input − output) / 2`` (world
units) around the block. ``padding`` says what the context is beyond the raw:

- ``"reflect"`` (default): the raw mirrored at its border; the prediction covers the whole
  raw ROI (or the requested ``roi`` inside it), so a crop smaller than the model's input +
  context is still predicted whole;
- ``"zero"``: zeros beyond the raw, also the whole ROI;
- ``"none"``: only where the model sees real context: the raw ROI shrunk by the context
  (a valid-padding UNet cannot see beyond the border).

The ROI is snapped to the output voxel grid; blocks at the far end overhang and are
clipped. The forward pass runs with ``engine`` and ``precision`` (`dacapo.pipeline.engines`: by
default the fastest exact engine measured for the kind of network). One forward path
(`predict_block`) serves both ways of running:

- ``num_workers`` 0 or 1 without a ``worker_command`` (or a ``model`` given): the blocks in
  this process (`predict_in_process`: no worker start-up, the next block's read and the
  previous block's write overlap the forward pass; what validation during training uses).
  From a checkpoint with one worker or a ``log_dir``, with the runner's done-markers;
- ``num_workers >= 2`` or a ``worker_command``: on the daisy runner
  (`dacapo.blockwise.run_blockwise`, done-markers: a killed job re-run skips finished
  blocks); every worker process builds the model from the run's configs and loads the
  checkpoint once, with ``cpu_count // num_workers`` torch threads, and reads the raw
  itself (so an OME-NGFF raw works).
"""

from __future__ import annotations

import functools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attr
import numpy as np
import torch
from funlib.geometry import Roi
from funlib.persistence import Array
from tqdm import tqdm

from dacapo.blockwise import run_blockwise
from dacapo.blockwise.grid import BlockPlan, plan_blocks
from dacapo.blockwise.worker import done_dir
from dacapo.errors import InputError
from dacapo.experiments.normalization import normalize_input
from dacapo.experiments.tta import forward
from dacapo.io.array_checks import check_finite_array
from dacapo.io.arrays import PADDINGS, atomic_write_text, open_array, read_with_padding
from dacapo.io.ome_write import prepare_ome  # outputs are OME-NGFF images
from dacapo.io.paths import check_output
from dacapo.pipeline.engines import (
    Forward,
    check_options,
    export_onnx,
    make_forward,
    onnx_cache_path,
    resolve_engine,
)
from dacapo.pipeline.model_geometry import ModelGeometry, block_rois, prediction_roi
from dacapo.runs.model_builder import build_model, choose_device, load_weights

logger = logging.getLogger(__name__)


def block_input(raw: Array, write_roi: Roi, geometry: ModelGeometry, padding: str = "reflect",
                normalization=None) -> np.ndarray:
    """The model's input for ``write_roi``, ``(1, C, *spatial)`` float32: the raw read with
    the model's context (padded beyond the raw as ``padding`` says), normalised as the run's
    ``normalization`` says."""
    read_roi = write_roi.grow(geometry.context, geometry.context)
    data = normalize_input(read_with_padding(raw, read_roi, padding), normalization)
    if data.ndim == raw.voxel_size.dims:
        data = data[None]
    return np.ascontiguousarray(data)[None]


def block_output(model_forward: Forward, data: np.ndarray, write_roi: Roi,
                 geometry: ModelGeometry, flips: bool = False) -> np.ndarray:
    """Model output (channels first, float32) for ``write_roi`` from its `block_input`: one
    forward pass in eval mode (the flip mean with ``flips``)."""
    y = forward(model_forward, data, flips)[0]
    expected = tuple(write_roi.shape / geometry.output_voxel_size)
    if tuple(y.shape[1:]) != expected:
        raise ValueError(
            f"model output shape {tuple(y.shape[1:])} != block shape {expected}; the model's "
            "output is not centred in its input"
        )
    return y


def predict_block(model_forward: Forward, raw: Array, write_roi: Roi, geometry: ModelGeometry,
                  padding: str = "reflect", normalization=None, flips: bool = False) -> np.ndarray:
    """Model output (channels first, float32) for ``write_roi``: `block_input` then
    `block_output` (``model_forward``: `dacapo.pipeline.engines.make_forward` of the model)."""
    data = block_input(raw, write_roi, geometry, padding, normalization)
    return block_output(model_forward, data, write_roi, geometry, flips)


@attr.s(frozen=True)
class PredictSpec:
    """What a worker needs to rebuild the model (picklable)."""

    run_config = attr.ib()
    checkpoint: str = attr.ib()
    raw: str = attr.ib()
    padding: str = attr.ib()
    threads: int = attr.ib(default=1)
    engine: str = attr.ib(default="auto")
    precision: str = attr.ib(default="fp32")
    onnx_cache: str | None = attr.ib(default=None)


_CACHE: dict = {}


def _load(spec: PredictSpec):
    """(model, raw Array, geometry) for ``spec``, once per process."""
    key = (spec.checkpoint, spec.raw)
    if key not in _CACHE:
        torch.set_num_threads(max(1, spec.threads))
        model = load_weights(build_model(spec.run_config), spec.checkpoint)
        model.to(choose_device(spec.run_config.device)).eval()
        raw = open_array(spec.raw, "raw")
        cache = Path(spec.onnx_cache) if spec.onnx_cache else None
        model_forward = make_forward(model, spec.engine, spec.precision, spec.threads, cache)
        _CACHE.clear()
        _CACHE[key] = (model_forward, raw, ModelGeometry(model, raw.voxel_size, model.eval_input_shape))
    return _CACHE[key]


def _worker_block(spec: PredictSpec, block) -> np.ndarray:
    """Runner process function: `predict_block` of ``block.write_roi``."""
    model_forward, raw, geometry = _load(spec)
    rc = spec.run_config
    return predict_block(model_forward, raw, block.write_roi, geometry, spec.padding,
                         rc.normalization, rc.test_time_flips)


def predict_in_process(model, raw: Array, output, out_roi: Roi, geometry: ModelGeometry,
                       padding: str = "reflect", progress: bool = True, engine: str = "auto",
                       precision: str = "fp32", onnx_cache: Path | None = None,
                       normalization=None, flips: bool = False, plan: BlockPlan | None = None
                       ) -> None:
    """Predict every block of ``out_roi`` with ``model`` here and write it to ``output``.

    Three stages overlap: while the forward pass of a block runs, a reader thread reads and
    normalises the next block's raw and a writer thread writes the previous block's output
    (at most one block in each stage). With ``plan`` (`dacapo.blockwise.plan_blocks` of the
    output), blocks already marked done are skipped and each block is marked done after its
    write, as on the daisy workers (a killed run re-run continues where it stopped)."""
    was_training = model.training
    model_forward = make_forward(model, engine, precision, cache=onnx_cache)
    if plan is None:
        blocks = [(None, roi) for roi in block_rois(out_roi, geometry.output_size)]
    else:
        todo = sorted(set(plan.blocks) - plan.done_ids())
        blocks = [(i, plan.blocks[i].write_roi) for i in todo]

    def read(write_roi: Roi) -> np.ndarray:
        return block_input(raw, write_roi, geometry, padding, normalization)

    def write(block_id: int | None, write_roi: Roi, y: np.ndarray) -> None:
        target = write_roi.intersect(out_roi)
        rel = (target - write_roi.offset) / geometry.output_voxel_size
        y = y[(slice(None),) + rel.to_slices()]
        output[target] = y if output.channel_dims else y[0]  # 1 channel: no channel axis
        if block_id is not None:
            atomic_write_text(done_dir(plan.task_dir) / str(block_id), "")

    try:
        with ThreadPoolExecutor(max_workers=1) as reader, \
                ThreadPoolExecutor(max_workers=1) as writer:
            ahead = reader.submit(read, blocks[0][1]) if blocks else None
            pending = None
            for k, (block_id, write_roi) in enumerate(
                    tqdm(blocks, desc="predict", disable=not progress, dynamic_ncols=True,
                         leave=False)):
                data = ahead.result()
                if k + 1 < len(blocks):
                    ahead = reader.submit(read, blocks[k + 1][1])
                y = block_output(model_forward, data, write_roi, geometry, flips)
                if pending is not None:
                    pending.result()  # a failed write raises here
                pending = writer.submit(write, block_id, write_roi, y)
            if pending is not None:
                pending.result()
    finally:
        model.train(was_training)


def prediction_values(run_config, raw_path: str | Path) -> int:
    """At most how many values (channels × voxels) the prediction of ``raw_path`` holds
    (the whole raw ROI on the output grid; no forward pass to find the model's context)."""
    raw = open_array(raw_path, "raw")
    model = build_model(run_config)
    output_voxel_size = model.scale(raw.voxel_size)
    return model.num_out_channels * int(np.prod(raw.roi.shape / output_voxel_size))


def predict(
    run_config,
    checkpoint: str | Path,
    raw_path: str | Path,
    output_path: str | Path,
    *,
    roi: Roi | None = None,
    padding: str = "reflect",
    num_workers: int = 1,
    worker_command: str | None = None,
    log_dir: str | Path | None = None,
    task_id: str = "predict",
    progress: bool = True,
    model=None,
    check_raw: bool = True,
    engine: str = "auto",
    precision: str = "fp32",
) -> Array:
    """Predict ``raw_path`` with the model of ``run_config`` at ``checkpoint``.

    ``num_workers`` 0, or 1 without ``worker_command``, or a ``model`` (already holding the
    weights; ``checkpoint`` is then not read) predicts in this process (see the module
    docstring). ``check_raw=False`` skips the scan of the raw for
    NaN/Inf (for a caller that has scanned it already). ``roi`` limits the prediction;
    ``padding`` (see the module docstring) fills the context beyond the raw; ``engine`` and
    ``precision``: `dacapo.pipeline.engines`. Writes
    ``output_path`` (an OME-NGFF image, float32, channels first; one channel: no channel
    axis) and returns it opened read-only.
    """
    if padding not in PADDINGS:
        raise InputError(f"padding: must be one of {list(PADDINGS)}, got {padding!r}")
    check_options(engine, precision)
    check_output(output_path, {"raw": raw_path})
    raw = open_array(raw_path, "raw")
    if check_raw:
        check_finite_array(raw, "raw")
    # one local worker is this process: the model is loaded already, no worker start-up
    in_process = model is not None or num_workers == 0 or (num_workers == 1
                                                              and worker_command is None)
    from_checkpoint = model is None  # (a given model's weights may differ from any file)
    if model is None:
        # loaded here also when workers predict: a corrupt checkpoint fails once, clearly
        model = load_weights(build_model(run_config), checkpoint)
        model.to(choose_device(run_config.device))
    if model.num_in_channels != (1 if len(raw.shape) == raw.voxel_size.dims else raw.shape[0]):
        raise InputError(
            f"raw {str(raw_path)!r} has shape {tuple(raw.shape)}; the model expects "
            f"{model.num_in_channels} input channel(s)"
        )
    geometry = ModelGeometry(model, raw.voxel_size, model.eval_input_shape)
    out_roi = prediction_roi(raw.roi, geometry, roi, padding)
    cache = onnx_cache_path(checkpoint, model.eval_input_shape) if from_checkpoint else None
    blocks = int(np.prod([-(-s // b) for s, b in zip(out_roi.shape, geometry.output_size)]))
    engine = resolve_engine(engine, precision, next(model.parameters()).device, blocks,
                            cached=cache is not None and cache.is_file(),
                            input_shape=model.eval_input_shape)
    spatial_names = list(raw.axis_names[len(raw.axis_names) - raw.voxel_size.dims :])
    voxels = int(np.prod(out_roi.shape / geometry.output_voxel_size))
    check_output(output_path, {"raw": raw_path}, 4 * model.num_out_channels * voxels)
    output = prepare_ome(
        output_path, total_roi=out_roi, voxel_size=geometry.output_voxel_size, dtype=np.float32,
        num_channels=model.num_out_channels, write_size=geometry.output_size,
        axis_names=spatial_names, units=list(raw.units) if raw.units else None,
    )
    logger.info("predicting %s -> %s (ROI %s, blocks %s, context %s, %s)", raw_path,
                output_path, out_roi, geometry.output_size, geometry.context,
                "in this process" if in_process else f"{num_workers} workers")
    if in_process:
        plan = None
        if from_checkpoint and (num_workers >= 1 or log_dir is not None):
            # the workers' block layout and done-markers: a re-run (any workers) resumes
            plan = plan_blocks({}, output_path, geometry.output_size, geometry.context, None,
                               log_dir, task_id, "overhang", parallel=False)
            logger.info("task %s: %d blocks (%d already done) in this process, logs in %s",
                        task_id, len(plan.blocks), len(plan.done_ids()), plan.task_dir)
        predict_in_process(model, raw, output, out_roi, geometry, padding, progress, engine,
                           precision, cache, run_config.normalization,
                           run_config.test_time_flips, plan)
        return open_array(output_path, "prediction")
    if engine == "onnx":  # exported once here; the workers read the cached file
        input_shape = (1, model.num_in_channels, *model.eval_input_shape)
        export_onnx(model.eval(), input_shape, cache)
    spec = PredictSpec(run_config, str(Path(checkpoint).absolute()),
                       str(Path(raw_path).absolute()), padding,
                       max(1, (os.cpu_count() or 1) // max(1, num_workers)), engine, precision,
                       None if cache is None else str(cache))
    run_blockwise(
        functools.partial(_worker_block, spec), inputs={}, output=output_path,
        block_size=geometry.output_size, context=geometry.context, num_workers=num_workers,
        log_dir=log_dir, task_id=task_id, worker_command=worker_command, fit="overhang",
        progress=progress,
    )
    return open_array(output_path, "prediction")
