"""Blockwise map-reduce on the runner, for evaluations of volumes bigger than memory.

`map_reduce_blocks(process, reduce, inputs, roi, block_size, context)` is a map job of the
runner (`dacapo.blockwise.grid.plan_map`, `dacapo.blockwise.runner.run_job`): ``roi`` is
split into blocks; for each block every input is read in the block grown by ``context``
(voxels outside ``roi`` or the array read as **0**, so a block sees exactly what an
in-memory computation restricted to ``roi`` sees) and ``process(**arrays,
block=BlockInfo)`` returns the block's partial result, ``{name: array}`` (``block.region``:
the slices of the block's own, write, ROI inside the read arrays). The result is saved to
``<log_dir>/<task_id>/results/<block_id>.npz``, atomically: the file is the block's
done-marker. Then ``reduce`` gets an iterator over the saved results (in block order) and
its return value is returned. Partial results must be additive (contingency tables,
confusion matrices, counts and sums), so memory is one block plus what ``reduce`` keeps.

A killed run re-run with the same ``log_dir`` and ``task_id`` computes only the missing
blocks (results of another configuration there are refused); without ``log_dir`` a
temporary directory is used and removed. Workers, failed blocks and their report are the
runner's (`dacapo.blockwise.options`, `dacapo.blockwise.report`). The evaluator-facing
entry point is `dacapo.experiments.tasks.evaluators.evaluate_blockwise`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attr
import numpy as np
from funlib.geometry import Coordinate, Roi

from dacapo.blockwise.grid import plan_map
from dacapo.blockwise.options import BlockwiseOptions
from dacapo.blockwise.runner import run_job
from dacapo.blockwise.worker import DoneMarkers, Spec

__all__ = ["map_reduce_blocks"]


def _load(markers: DoneMarkers, ids: list[int]) -> Iterator[dict[str, np.ndarray]]:
    for block_id in ids:
        with np.load(markers.path(block_id)) as f:
            yield {key: f[key] for key in f.files}


def map_reduce_blocks(
    process: Callable[..., Mapping[str, np.ndarray]],
    reduce: Callable[[Iterator[dict[str, np.ndarray]]], Any],
    inputs: Mapping[str, str | Path],
    roi: Roi,
    block_size: Coordinate,
    context: Coordinate | None = None,
    options: BlockwiseOptions | None = None,
    config: dict | None = None,
):
    """Map ``process`` over the blocks of ``roi`` and ``reduce`` their saved results (see
    the module docstring). ``block_size``, ``context`` and ``roi`` are in world units,
    multiples of the inputs' voxel size; ``options``: workers and ``log_dir``/``task_id``
    (default task id ``map_reduce``; no progress bar); ``config`` (JSON) describes the
    computation for the resume check. Raises `dacapo.blockwise.BlockwiseError` naming the
    failed blocks and the first error."""
    options = BlockwiseOptions() if options is None else options
    temporary = options.log_dir is None
    base = Path(tempfile.mkdtemp(prefix="dacapo_blocks_")) if temporary else options.log_dir
    try:
        roi = Roi(roi.offset, roi.shape)
        plan = plan_map(inputs, roi, block_size, context, base,
                        options.task_id or "map_reduce", config)
        spec = Spec(process, plan.inputs, None, str(plan.task_dir), plan.task_id,
                    plan.markers, within=roi)
        run_job(spec, plan, attr.evolve(options, progress=False))
        return reduce(_load(plan.markers, sorted(plan.blocks)))
    finally:
        if temporary:
            shutil.rmtree(base, ignore_errors=True)
