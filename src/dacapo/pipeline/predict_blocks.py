"""The prediction of one block, the one forward path of every way of predicting.

`block_input` reads a block's raw with the model's context (padded beyond the raw as the
``padding`` option says) and normalises it; `block_output` runs the forward pass and checks
the output shape. In this process `dacapo.pipeline.predict.predict_in_process` overlaps the
two with the reads and writes of the neighbouring blocks; on the daisy runner each worker
builds the model once from a `PredictSpec` (`worker_block`).
"""

from __future__ import annotations

from pathlib import Path

import attr
import numpy as np
import torch
from funlib.geometry import Roi
from funlib.persistence import Array

from dacapo.experiments.normalization import normalize_input
from dacapo.experiments.tta import FlipPlan, flip_plan, forward
from dacapo.io.arrays import open_array, read_with_padding
from dacapo.pipeline.engines import Forward, make_forward
from dacapo.pipeline.model_geometry import ModelGeometry
from dacapo.runs.model_builder import build_model, choose_device, load_weights


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
                 geometry: ModelGeometry, flips: FlipPlan | None = None) -> np.ndarray:
    """Model output (channels first, float32) for ``write_roi`` from its `block_input`: one
    forward pass in eval mode (the flip mean with ``flips``: `dacapo.experiments.tta`)."""
    y = forward(model_forward, data, flips)[0]
    expected = tuple(write_roi.shape / geometry.output_voxel_size)
    if tuple(y.shape[1:]) != expected:
        raise ValueError(
            f"model output shape {tuple(y.shape[1:])} != block shape {expected}; the model's "
            "output is not centred in its input"
        )
    return y


def predict_block(model_forward: Forward, raw: Array, write_roi: Roi, geometry: ModelGeometry,
                  padding: str = "reflect", normalization=None,
                  flips: FlipPlan | None = None) -> np.ndarray:
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
    """(model forward, raw Array, geometry) for ``spec``, once per process."""
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


def worker_block(spec: PredictSpec, block) -> np.ndarray:
    """Runner process function: `predict_block` of ``block.write_roi``."""
    model_forward, raw, geometry = _load(spec)
    rc = spec.run_config
    return predict_block(model_forward, raw, block.write_roi, geometry, spec.padding,
                         rc.normalization, flip_plan(rc))
