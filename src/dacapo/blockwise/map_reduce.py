"""Blockwise map-reduce on daisy, for evaluations of volumes bigger than memory.

`map_reduce_blocks(block_function, reduce, inputs, roi, block_size, context)` splits
``roi`` into blocks; for each block it reads every input in the block grown by ``context``
(voxels outside ``roi`` or the array read as **0**, so a block sees exactly what an
in-memory computation restricted to ``roi`` sees), calls
``block_function(arrays, region, voxel_size)`` — ``region`` are the slices of the block's
own (write) ROI inside the read arrays — and saves the returned arrays to
``<log_dir>/<task_id>/results/<block_id>.npz`` (atomically: the file is the block's
done-marker). Then ``reduce`` gets an iterator over the saved results (in block order) and
its return value is returned. Partial results must be additive (contingency tables,
confusion matrices, counts and sums), so memory is one block plus what ``reduce`` keeps.

A killed run re-run with the same ``log_dir`` and ``task_id`` computes only the missing
blocks (a different configuration there is refused); without ``log_dir`` a temporary
directory is used and removed. ``num_workers`` > 1 runs the blocks on daisy worker
processes (``block_function`` must then be picklable: a module-level function or a
`functools.partial` of one); with 1 they run in this process. The evaluator-facing entry
point is `dacapo.experiments.tasks.evaluators.evaluate_blockwise`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import tempfile
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import daisy.v2 as daisy
import numpy as np
from daisy import BlockStatus
from daisy import logging as daisy_logging
from funlib.geometry import Coordinate, Roi

from dacapo.blockwise.report import BlockwiseError, BlockwiseResult, FailedBlock
from dacapo.io.arrays import open_array, read_array

logger = logging.getLogger(__name__)

__all__ = ["BlockFunction", "map_reduce_blocks"]

#: ``block_function(arrays, region, voxel_size) -> {name: array}`` (see module docstring)
BlockFunction = Callable[[dict[str, np.ndarray], tuple[slice, ...], Coordinate], dict]


@dataclass(frozen=True)
class _Spec:
    """What a block needs (pickled to workers)."""

    block_function: BlockFunction
    inputs: dict[str, str]
    roi_offset: tuple[int, ...]
    roi_shape: tuple[int, ...]
    task_dir: str

    @property
    def roi(self) -> Roi:
        return Roi(self.roi_offset, self.roi_shape)


_OPEN: dict[str, Any] = {}


def _open(path: str):
    """Open an input read-only, once per process."""
    if path not in _OPEN:
        _OPEN[path] = open_array(path, path, "r")
    return _OPEN[path]


def read_within(array, read_roi: Roi, roi: Roi) -> np.ndarray:
    """``read_roi`` of ``array`` with 0 outside ``roi`` and outside the array's ROI."""
    inside = read_roi.intersect(roi)
    vs = array.voxel_size
    data = read_array(array, inside)
    if inside == read_roi:
        return data
    out = np.zeros(data.shape[: data.ndim - vs.dims] + tuple(read_roi.shape / vs), data.dtype)
    out[(Ellipsis, *((inside - read_roi.offset) / vs).to_slices())] = data
    return out


def _result_path(task_dir: str | Path, block_id: int) -> Path:
    return Path(task_dir) / "results" / f"{block_id}.npz"


def _failure_path(task_dir: str | Path, block_id: int) -> Path:
    return Path(task_dir) / "failed" / f"{block_id}.txt"


def _is_done(task_dir: str, block) -> bool:
    """daisy check function: the block's result file exists."""
    return _result_path(task_dir, block.block_id[1]).exists()


def _run_block(spec: _Spec, block) -> None:
    """daisy block function: compute and save one block's result; on error the traceback
    goes to ``failed/<block id>.txt`` and the block is marked failed (daisy retries it)."""
    block_id = block.block_id[1]
    try:
        read_roi, write_roi = block.read_roi, block.write_roi
        arrays = {name: read_within(_open(p), read_roi, spec.roi) for name, p in spec.inputs.items()}
        voxel_size = _open(next(iter(spec.inputs.values()))).voxel_size
        region = ((write_roi - read_roi.offset) / voxel_size).to_slices()
        result = spec.block_function(arrays, region, voxel_size)
        path = _result_path(spec.task_dir, block_id)
        tmp = path.with_name(f".{block_id}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **result)
        os.replace(tmp, path)
    except Exception:
        tb = traceback.format_exc()
        logger.error("block %s (write ROI %s) failed:\n%s", block_id, block.write_roi, tb)
        _failure_path(spec.task_dir, block_id).write_text(tb)
        block.status = BlockStatus.FAILED


def _load(paths: list[Path]) -> Iterator[dict[str, np.ndarray]]:
    for path in paths:
        with np.load(path) as f:
            yield {key: f[key] for key in f.files}


def _check_config(task_dir: Path, config: dict) -> None:
    """Refuse results saved by a run with another configuration; record this one."""
    path = task_dir / "config.json"
    config = json.loads(json.dumps(config))
    if path.exists() and json.loads(path.read_text()) != config:
        if any((task_dir / "results").iterdir()):
            raise ValueError(
                f"{task_dir} holds block results of another evaluation ({path.read_text()}); "
                "use another log_dir/task_id or delete it"
            )
    path.write_text(json.dumps(config, indent=2))


def map_reduce_blocks(
    block_function: BlockFunction,
    reduce: Callable[[Iterator[dict[str, np.ndarray]]], Any],
    inputs: Mapping[str, str | Path],
    roi: Roi,
    block_size: Coordinate,
    context: Coordinate | None = None,
    num_workers: int = 1,
    log_dir: str | Path | None = None,
    task_id: str = "evaluate",
    config: dict | None = None,
):
    """Map ``block_function`` over the blocks of ``roi`` and ``reduce`` their saved results
    (see the module docstring). ``block_size``, ``context`` and ``roi`` are in world units,
    multiples of the inputs' voxel size; ``config`` (JSON) describes the computation for the
    resume check. Raises `BlockwiseError` naming the failed blocks and the first error."""
    inputs = {name: str(Path(p).absolute()) for name, p in inputs.items()}
    voxel_size = _open(next(iter(inputs.values()))).voxel_size
    zero = Coordinate((0,) * voxel_size.dims)
    block_size = Coordinate(block_size)
    context = zero if context is None else Coordinate(context)
    for name, value in (("block_size", block_size), ("context", context),
                        ("roi offset", roi.offset), ("roi shape", roi.shape)):
        if len(value) != voxel_size.dims or value % voxel_size != zero:
            raise ValueError(f"{name} {value} is not a multiple of the voxel size {voxel_size}")
    if min(block_size) <= 0:
        raise ValueError(f"block_size {block_size} must be positive")

    temporary = log_dir is None
    base = Path(tempfile.mkdtemp(prefix="dacapo_blocks_")) if temporary else Path(log_dir)
    task_dir = (base / task_id).absolute()
    try:
        (task_dir / "results").mkdir(parents=True, exist_ok=True)
        shutil.rmtree(task_dir / "failed", ignore_errors=True)
        (task_dir / "failed").mkdir()
        _check_config(task_dir, {
            "inputs": inputs, "roi": [list(roi.offset), list(roi.shape)],
            "block_size": list(block_size), "context": list(context), **(config or {}),
        })
        spec = _Spec(block_function, inputs, tuple(roi.offset), tuple(roi.shape), str(task_dir))
        block_read = Roi(zero, block_size + context * 2)
        block_write = Roi(context, block_size)
        total_read = roi.grow(context, context)
        graph = daisy.BlockwiseDependencyGraph(
            task_id, block_read, block_write, False, "shrink", total_read_roi=total_read
        )
        blocks = {b.block_id[1]: b.write_roi for b, _ in graph.enumerate_all_dependencies()}
        done_before = {i for i in blocks if _result_path(task_dir, i).exists()}
        logger.info("task %s: %d blocks of %s over %s (%d done before), context %s, %d workers",
                    task_id, len(blocks), block_size, roi, len(done_before), context, num_workers)
        if len(done_before) < len(blocks):
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r"Task\(check_function")
                task = daisy.Task(
                    task_id, total_read, block_read, block_write,
                    process_function=functools.partial(_run_block, spec),
                    check_function=functools.partial(_is_done, str(task_dir)),
                    read_write_conflict=False, fit="shrink", max_workers=max(1, num_workers),
                    max_retries=2, tracking_path=False,
                )
            previous = daisy_logging.get_log_basedir()
            daisy_logging.set_log_basedir(task_dir / "daisy")
            try:
                daisy.run_blockwise(task, multiprocessing=num_workers > 1, progress=False,
                                    summary=False, host="127.0.0.1")
            except RuntimeError as e:  # daisy raises when it abandons the task
                logger.error("task %s: daisy abandoned it: %s", task_id, e)
            finally:
                daisy_logging.set_log_basedir(previous)
        order = sorted(blocks)
        missing = [i for i in order if not _result_path(task_dir, i).exists()]
        if missing:
            failed = [FailedBlock(i, blocks[i], _failure_path(task_dir, i).read_text()
                                  if _failure_path(task_dir, i).exists() else None)
                      for i in missing]
            first = next((b for b in failed if b.error), failed[0])
            msg = (f"blockwise task {task_id!r}: {len(failed)} of {len(blocks)} blocks failed "
                   f"(after 2 retries), first {first}")
            if first.error:
                msg += f":\n{first.error.rstrip()}"
            if not temporary:
                msg += f"\nre-run with log_dir={base} to retry only the failed blocks"
            done = len(blocks) - len(missing)
            result = BlockwiseResult(len(blocks), done - len(done_before), len(done_before), failed)
            raise BlockwiseError(msg, result)
        return reduce(_load([_result_path(task_dir, i) for i in order]))
    finally:
        if temporary:
            shutil.rmtree(base, ignore_errors=True)
