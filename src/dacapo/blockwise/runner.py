"""Blockwise processing of large zarr volumes with daisy 2.0: `run_blockwise`.

A total write ROI is split into blocks (`dacapo.blockwise.grid`), and for each block
(`dacapo.blockwise.worker`):

1. every input is read in the block's *read ROI* (write ROI grown by ``context`` on each
   side) — voxels outside an input's ROI are **zero-padded**, so the process function
   always receives the full context shape;
2. ``process(**arrays, block=BlockInfo(...))`` returns the data of the write ROI only;
3. that data is written into the output array (clipped to the output ROI);
4. a done-marker ``<log_dir>/<task_id>/done/<block_id>`` is created atomically.

A re-run with the same ``log_dir``/``task_id`` skips every block that has a marker, so an
interrupted or partially failed run can simply be restarted. Blocks run in this process
(``num_workers=0``), on local worker processes or through a worker command
(`dacapo.blockwise.launch`, `dacapo.blockwise.options`); `dacapo.blockwise.report` tells
what was done. `run_job` runs any planned job: an array job of `run_blockwise` or a map
job of `dacapo.blockwise.map_reduce`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from funlib.geometry import Coordinate, Roi

from dacapo.blockwise.grid import BlockPlan, plan_blocks
from dacapo.blockwise.launch import run_in_process, run_on_workers
from dacapo.blockwise.options import BlockwiseOptions
from dacapo.blockwise.progress import watch
from dacapo.blockwise.report import BlockwiseResult, failed_dir, report
from dacapo.blockwise.worker import Spec

logger = logging.getLogger(__name__)


def run_blockwise(
    process: Callable[..., np.ndarray],
    inputs: Mapping[str, str | Path],
    output: str | Path,
    block_size: Coordinate,
    context: Coordinate | None = None,
    options: BlockwiseOptions | None = None,
    *,
    roi: Roi | None = None,
    fit: str = "shrink",
    max_retries: int = 2,
    block_timeout: float | None = None,
) -> BlockwiseResult:
    """Apply ``process`` blockwise to ``inputs`` and write into ``output``.

    ``process`` must be picklable (a module-level function or a `functools.partial` of
    one). It is called once per block as ``process(**{name: ndarray}, block=BlockInfo)``:
    each input covers the block's read ROI (write ROI grown by ``context``), keeps its
    leading channel axes, and is zero-padded where the read ROI leaves the input's ROI.
    It returns the data of the write ROI only (channels first if the output has channels).

    ``output`` must already exist (see `dacapo.io.arrays.prepare_zarr`).
    ``block_size``, ``context`` and ``roi`` are in world units; ``roi`` defaults to the
    output ROI. ``options`` (`BlockwiseOptions`): workers, worker command, progress bar;
    done-markers and daisy's worker logs go to ``log_dir/task_id`` (default:
    ``<container>.blockwise/<array>/dacapo`` next to the output's zarr container).
    Failed blocks are retried ``max_retries`` times on workers; ``block_timeout`` (seconds,
    default daisy's 600) kills a worker stuck on one block.

    Raises `BlockwiseError` (with ``.result``) if any block is left unfinished.
    """
    options = BlockwiseOptions() if options is None else options
    workers = options.workers
    plan = plan_blocks(inputs, output, block_size, context, roi, options.log_dir,
                       options.task_id or "dacapo", fit,
                       parallel=workers > 1 or options.worker_command is not None)
    spec = Spec(process, plan.inputs, str(plan.output), str(plan.task_dir), plan.task_id,
                plan.markers)
    return run_job(spec, plan, options, max_retries=max_retries, block_timeout=block_timeout)


def run_job(spec: Spec, plan: BlockPlan, options: BlockwiseOptions, *, max_retries: int = 2,
            block_timeout: float | None = None) -> BlockwiseResult:
    """Run the blocks of ``plan`` not marked done — in this process or on workers, as
    ``options`` say — and report (`dacapo.blockwise.report.report`)."""
    workers = options.workers
    done_before = plan.done_ids()
    for stale in failed_dir(plan.task_dir).glob("*.json"):
        stale.unlink()
    plan.markers.clear_partial()
    todo = set(plan.blocks) - done_before
    in_process = workers == 0
    workers = 0 if in_process else min(workers, max(len(todo), 1))
    logger.info("task %s: %d blocks (%d already done), %s, logs in %s", plan.task_id,
                len(plan.blocks), len(done_before),
                "in this process" if in_process else f"{workers} workers", plan.task_dir)
    abandoned = None
    with watch(plan.task_id, len(plan.blocks), lambda: len(plan.done_ids()), options.notices):
        if todo and in_process:
            run_in_process(spec, plan, todo)
        elif todo:
            abandoned = run_on_workers(spec, plan, workers, options, max_retries, block_timeout)
    return report(plan.task_id, plan.task_dir, plan.write_rois, done_before, plan.done_ids(),
                  abandoned, max_retries)
