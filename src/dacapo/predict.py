"""Blockwise model prediction of a raw volume into a float32 zarr array.

Each block's output is the model's eval-mode output (activation applied) for an input of
``eval_input_shape`` voxels; the input is read with context ``(input − output) / 2`` (world
units) around the block and zero-padded outside the raw. The prediction covers the raw
ROI shrunk by that context (a valid-padding UNet cannot predict the border), snapped to the
output voxel grid; blocks at the far end overhang and are clipped.

With ``num_workers >= 1`` blocks run on the daisy runner (`dacapo.blockwise.run_blockwise`,
done-markers: a killed job re-run skips finished blocks); every worker process builds the
model from the run's configs and loads the checkpoint once, with ``cpu_count // num_workers``
torch threads. Raw is read by the workers themselves (so an OME-NGFF raw works), through
`dacapo.experiments.datasplits.open_array`. With ``num_workers == 0`` (or a ``model``
given) the same blocks are predicted one after the other in this process: no worker start-up,
which is what validation during training uses.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import attr
import numpy as np
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from dacapo.checks import check_finite_array, check_not_input_array, check_output_location
from dacapo.experiments.datasplits import normalize_raw, open_array
from dacapo.train import CropGeometry, build_model, choose_device, snap_roi

logger = logging.getLogger(__name__)


@attr.s(frozen=True)
class PredictSpec:
    """What a worker needs to rebuild the model (picklable)."""

    task_config = attr.ib()
    architecture_config = attr.ib()
    checkpoint: str = attr.ib()
    raw: str = attr.ib()
    device: str | None = attr.ib(default=None)
    threads: int = attr.ib(default=1)


_CACHE: dict = {}


def _load(spec: PredictSpec):
    """(model, raw Array) for ``spec``, once per process."""
    key = (spec.checkpoint, spec.raw)
    if key not in _CACHE:
        import torch

        torch.set_num_threads(max(1, spec.threads))
        task = spec.task_config.build()
        model = task.create_model(spec.architecture_config)
        state = torch.load(spec.checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"] if "model" in state else state)
        device = choose_device(spec.device)
        model.to(device).eval()
        _CACHE.clear()
        _CACHE[key] = (model, open_array(spec.raw, "raw"), device)
    return _CACHE[key]


def predict_block(spec: PredictSpec, block) -> np.ndarray:
    """Model output (channels first, float32) for ``block.write_roi``."""
    import torch

    model, raw, device = _load(spec)
    data = normalize_raw(np.asarray(raw.to_ndarray(block.read_roi, fill_value=0)))
    if data.ndim == raw.voxel_size.dims:
        data = data[None]
    with torch.no_grad():
        y = model(torch.from_numpy(np.ascontiguousarray(data))[None].to(device))[0]
    y = y.cpu().numpy().astype(np.float32, copy=False)
    expected = tuple(block.write_roi.shape / block.voxel_size)
    if tuple(y.shape[1:]) != expected:
        raise ValueError(
            f"model output shape {tuple(y.shape[1:])} != block shape {expected}; the model's "
            "output is not centred in its input"
        )
    return y


def block_rois(out_roi: Roi, geometry: CropGeometry) -> list[Roi]:
    """Write ROIs of the block grid over ``out_roi`` (blocks at the far end overhang)."""
    from itertools import product

    steps = [range(b, e, s) for b, e, s in zip(out_roi.begin, out_roi.end, geometry.output_size)]
    return [Roi(Coordinate(begin), geometry.output_size) for begin in product(*steps)]


def predict_in_process(model, raw: Array, output, out_roi: Roi, geometry: CropGeometry,
                       progress: bool = True) -> None:
    """Predict every block of ``out_roi`` with ``model`` here and write it to ``output``."""
    import torch
    from tqdm import tqdm

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for write_roi in tqdm(block_rois(out_roi, geometry), desc="predict", disable=not progress,
                              dynamic_ncols=True, leave=False):
            read_roi = write_roi.grow(geometry.context, geometry.context)
            data = normalize_raw(np.asarray(raw.to_ndarray(read_roi, fill_value=0)))
            if data.ndim == raw.voxel_size.dims:
                data = data[None]
            with torch.no_grad():
                y = model(torch.from_numpy(np.ascontiguousarray(data))[None].to(device))[0]
            y = y.cpu().numpy().astype(np.float32, copy=False)
            target = write_roi.intersect(out_roi)
            rel = (target - write_roi.offset) / geometry.output_voxel_size
            y = y[(slice(None),) + rel.to_slices()]
            output[target] = y if output.channel_dims else y[0]  # 1 channel: no channel axis
    finally:
        model.train(was_training)


def prediction_roi(raw: Array, geometry: CropGeometry, roi: Roi | None = None) -> Roi:
    """Raw ROI shrunk by the context, snapped to the output grid (∩ ``roi``)."""
    out = raw.roi.grow(-geometry.context, -geometry.context)
    if roi is not None:
        out = out.intersect(roi)
    out = snap_roi(out, geometry.output_voxel_size)
    if out.empty or any(s <= 0 for s in out.shape):
        raise ValueError(
            f"raw ROI {raw.roi} is too small for the model: it needs a context of "
            f"{tuple(geometry.context)} (world units) on each side"
        )
    return out


def predict(
    run_config,
    checkpoint: str | Path,
    raw_path: str | Path,
    output_path: str | Path,
    *,
    roi: Roi | None = None,
    num_workers: int = 1,
    worker_command: str | None = None,
    log_dir: str | Path | None = None,
    task_id: str = "predict",
    progress: bool = True,
    model=None,
    check_raw: bool = True,
) -> Array:
    """Predict ``raw_path`` with the model of ``run_config`` at ``checkpoint``.

    ``num_workers == 0`` or a ``model`` (already holding the weights; ``checkpoint`` is then
    not read) predicts in this process. ``check_raw=False`` skips the scan of the raw for
    NaN/Inf (for a caller that has scanned it already). Writes ``output_path`` (zarr,
    float32, channels first) and returns it opened read-only.
    """
    from dacapo.blockwise import run_blockwise
    from dacapo.store.ome import prepare_output

    check_not_input_array(output_path, raw_path)
    raw = open_array(raw_path, "raw")
    if check_raw:
        check_finite_array(raw, "raw")
    in_process = model is not None or num_workers == 0
    if model is None:
        model = build_model(run_config)
        if in_process:
            import torch

            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
            model.load_state_dict(state["model"] if "model" in state else state)
            model.to(choose_device(run_config.device))
    if model.num_in_channels != (1 if len(raw.shape) == raw.voxel_size.dims else raw.shape[0]):
        raise ValueError(
            f"raw {str(raw_path)!r} has shape {tuple(raw.shape)}; the model expects "
            f"{model.num_in_channels} input channel(s)"
        )
    geometry = CropGeometry(model, raw.voxel_size, model.eval_input_shape)
    out_roi = prediction_roi(raw, geometry, roi)
    spatial_names = list(raw.axis_names[len(raw.axis_names) - raw.voxel_size.dims :])
    check_output_location(output_path, 4 * model.num_out_channels * int(np.prod(out_roi.shape / geometry.output_voxel_size)))
    output = prepare_output(
        output_path,
        total_roi=out_roi,
        voxel_size=geometry.output_voxel_size,
        dtype=np.float32,
        num_channels=model.num_out_channels,
        write_size=geometry.output_size,
        axis_names=spatial_names,
        units=list(raw.units) if raw.units else None,
    )
    if in_process:
        logger.info("predicting %s -> %s in this process (ROI %s, blocks %s)",
                    raw_path, output_path, out_roi, geometry.output_size)
        predict_in_process(model, raw, output, out_roi, geometry, progress)
        return open_array(output_path, "prediction")
    cpus = os.cpu_count() or 1
    spec = PredictSpec(
        run_config.task_config,
        run_config.architecture_config,
        str(Path(checkpoint).absolute()),
        str(Path(raw_path).absolute()),
        run_config.device,
        max(1, cpus // max(1, num_workers)),
    )
    logger.info(
        "predicting %s -> %s (ROI %s, blocks %s, context %s)",
        raw_path, output_path, out_roi, geometry.output_size, geometry.context,
    )
    run_blockwise(
        functools.partial(predict_block, spec),
        inputs={},
        output=output_path,
        block_size=geometry.output_size,
        context=geometry.context,
        num_workers=num_workers,
        log_dir=log_dir,
        task_id=task_id,
        worker_command=worker_command,
        fit="overhang",
        progress=progress,
    )
    return open_array(output_path, "prediction")
