"""The block grid of a blockwise job, its checks, and the done-markers of a re-run.

A job covers ``total_write_roi`` in blocks of ``block_size``, each read with ``context`` on
every side (world units): an array job (`plan_blocks`) writes an ``output`` array, a map
job (`plan_map`) a partial result per block. Before anything runs, the plan checks that
blocks, context and ROI sit on every array's voxel grid, that parallel writers never
share an output chunk, and that done-markers left in the task directory were written for
the same job (a re-run skips the blocks marked done; other markers would lie).

Markers describe one content of the output: the task directory records the output's id
(`dacapo.io.ome_read.OUTPUT_ID`), and markers recorded with another id are dropped. A job
that starts without markers of its own writes the output anew, not as a resume: it
renews the id first (`dacapo.io.rewrite.renew_output`, which also removes the pyramid
levels derived from the output), so that no other job's markers are taken for blocks of
the new content — an apply with checkpoint A, then B, then A again into one output
recomputes every block the third time instead of skipping them on the first run's
markers.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import daisy.v2 as daisy
import numpy as np
from funlib.geometry import Coordinate, Roi

from dacapo.blockwise.report import failed_dir
from dacapo.blockwise.worker import DoneMarkers
from dacapo.io.arrays import atomic_write_text, container_of, open_array
from dacapo.io.ome_read import output_id
from dacapo.io.paths import check_not_input
from dacapo.io.rewrite import renew_output

logger = logging.getLogger(__name__)

_CONFIG_FILE = "run_config.json"


@dataclass
class BlockPlan:
    """The checked block layout of one job (``output`` None: a map job)."""

    task_id: str
    task_dir: Path
    output: Path | None
    inputs: dict[str, str]
    voxel_size: Coordinate
    block_size: Coordinate
    context: Coordinate
    fit: str
    total_write_roi: Roi
    total_read_roi: Roi
    block_read_roi: Roi
    block_write_roi: Roi
    blocks: dict  # block id -> daisy Block (read_roi, write_roi)
    markers: DoneMarkers

    @property
    def write_rois(self) -> dict[int, Roi]:
        return {i: b.write_roi for i, b in self.blocks.items()}

    def done_ids(self) -> set[int]:
        return self.markers.ids() & set(self.blocks)


def default_log_dir(output: Path) -> Path:
    """``<container>.blockwise/<array path>`` next to the output's zarr container."""
    output = Path(output).absolute()
    container = container_of(output)
    if container is None:
        return output.with_name(output.name + ".blockwise")
    rest = output.relative_to(container)
    return container.with_name(container.name + ".blockwise") / rest


def _check_alignment(name: str, roi: Roi, voxel_size: Coordinate) -> None:
    zero = Coordinate((0,) * len(voxel_size))
    if roi.offset % voxel_size != zero or roi.shape % voxel_size != zero:
        raise ValueError(
            f"{name}: ROI {roi} is not aligned with the voxel size {voxel_size}; "
            "block_size, context and roi must be multiples of every array's voxel size"
        )


def check_chunk_alignment(out, total_write_roi: Roi, block_size: Coordinate) -> None:
    """Blocks written in parallel must not share output chunks (lost updates).

    Every face between two blocks that lies inside the written region must fall on a chunk
    boundary; an axis with a single block (e.g. a ROI smaller than a block, whose chunks
    were clipped to the ROI) has no such face.
    """
    chunks = Coordinate(tuple(out._source_data.chunks)[out.channel_dims :])
    start = (total_write_roi.offset - out.roi.offset) / out.voxel_size
    end = (total_write_roi.end - out.roi.offset) / out.voxel_size
    step = block_size / out.voxel_size
    for axis, (s, e, st, c) in enumerate(zip(start, end, step, chunks)):
        bad = next((f for f in range(s + st, e, st) if f % c), None)
        if bad is not None:
            raise ValueError(
                f"parallel writes need blocks aligned to the output chunks: block size "
                f"{step} voxels and ROI start {start} voxels (relative to the output) put a "
                f"block face at voxel {bad} of axis {axis}, inside a chunk of shape {chunks}. "
                "Create the output with prepare_zarr / prepare_ome(..., write_size=block_size) or use "
                "num_workers=1."
            )


def _check_config(task_dir: Path, config: dict, markers: DoneMarkers,
                  renew: Callable[[], str] | None = None) -> None:
    """Refuse to reuse done-markers written for another job; drop those of an output array
    that has been created anew since (they describe another array). Without markers left,
    ``renew`` (an array job's) gives the output a new id, recorded (module docstring)."""
    path = task_dir / _CONFIG_FILE
    config = json.loads(json.dumps(config))
    if path.exists():
        previous = json.loads(path.read_text())
        if "output_id" in config and previous.get("output_id") != config["output_id"]:
            if markers.any():
                logger.info("%s: the output was created or written anew since these "
                            "done-markers; they are removed and every block is processed",
                            task_dir)
            markers.clear()
            previous = {**previous, "output_id": config["output_id"]}
        if previous != config and markers.any():
            raise ValueError(
                f"{task_dir} holds {markers.what} with a different configuration "
                f"({previous}) than this one ({config}). Use another task_id/log_dir or "
                f"delete {markers.folder} to start over."
            )
    if renew is not None and not markers.any():  # written anew, not resumed
        config["output_id"] = renew()
    atomic_write_text(path, json.dumps(config, indent=2))


def _check_inputs(inputs: dict[str, str], voxel_size: Coordinate, total_read_roi: Roi,
                  block_read_roi: Roi, block_size: Coordinate) -> None:
    for name, path in inputs.items():
        in_voxel_size = open_array(path, f"input {name!r}").voxel_size
        if len(in_voxel_size) != len(voxel_size):
            raise ValueError(
                f"input {name!r} has {len(in_voxel_size)} spatial dims, output has "
                f"{len(voxel_size)}"
            )
        _check_alignment(f"input {name!r} read block",
                         Roi(total_read_roi.offset, block_read_roi.shape), in_voxel_size)
        _check_alignment(f"input {name!r} block step", Roi(block_size, block_size), in_voxel_size)


def _lay_out(task_id: str, task_dir: Path, output: Path | None, inputs: dict[str, str],
             voxel_size: Coordinate, block_size, context, roi: Roi, fit: str,
             markers: DoneMarkers, config: dict, parallel_output=None,
             renew: Callable[[], str] | None = None) -> BlockPlan:
    """The grid of a job over ``roi`` (checked against every array's voxel grid and, with
    a ``parallel_output``, against its chunks), its task directory created and its
    ``config`` checked against the markers there (`_check_config`, ``renew``)."""
    block_size = Coordinate(block_size)
    context = Coordinate((0,) * len(voxel_size)) if context is None else Coordinate(context)
    total_write_roi = Roi(roi.offset, roi.shape)
    if len(block_size) != len(voxel_size) or len(context) != len(voxel_size):
        raise ValueError(
            f"block_size {block_size} and context {context} must have "
            f"{len(voxel_size)} dimensions like the voxel size {voxel_size}"
        )
    if min(block_size) <= 0:
        raise ValueError(f"block_size {block_size} must be positive")
    block_write_roi = Roi(context, block_size)
    block_read_roi = Roi((0,) * len(context), block_size + context * 2)
    total_read_roi = total_write_roi.grow(context, context)
    _check_alignment("output block", Roi(total_write_roi.offset, block_size), voxel_size)
    _check_alignment("output roi", total_write_roi, voxel_size)
    _check_inputs(inputs, voxel_size, total_read_roi, block_read_roi, block_size)
    if parallel_output is not None:
        check_chunk_alignment(parallel_output, total_write_roi, block_size)
    markers.folder.mkdir(parents=True, exist_ok=True)
    failed_dir(task_dir).mkdir(parents=True, exist_ok=True)
    _check_config(task_dir, {
        "roi": [list(total_write_roi.offset), list(total_write_roi.shape)],
        "block_size": list(block_size), "context": list(context), "fit": fit, **config,
    }, markers, renew)
    graph = daisy.BlockwiseDependencyGraph(
        task_id, block_read_roi, block_write_roi, False, fit, total_read_roi=total_read_roi
    )
    blocks = {b.block_id[1]: b for b, _ in graph.enumerate_all_dependencies()}
    return BlockPlan(task_id, task_dir, output, inputs, voxel_size, block_size, context, fit,
                     total_write_roi, total_read_roi, block_read_roi, block_write_roi, blocks,
                     markers)


def plan_blocks(inputs: Mapping[str, str | Path], output: str | Path, block_size: Coordinate,
                context: Coordinate | None, roi: Roi | None, log_dir: str | Path | None,
                task_id: str, fit: str, parallel: bool) -> BlockPlan:
    """Check and lay out an array job writing ``output`` over ``roi`` (None: the output's
    ROI); creates its task directory ``log_dir/task_id`` (default log dir:
    `default_log_dir`). Without done-markers there, the output is written anew: its id is
    renewed and its derived pyramid levels removed (module docstring)."""
    if "block" in inputs:
        raise ValueError("an input must not be called 'block' (reserved keyword)")
    output = Path(output)
    inputs = {name: str(path) for name, path in inputs.items()}
    check_not_input(output, inputs)
    out = open_array(output, "output")
    roi = out.roi if roi is None else roi
    log_dir = default_log_dir(output) if log_dir is None else Path(log_dir)
    task_dir = log_dir.absolute() / task_id
    config = {"output": str(output.absolute()), "output_id": output_id(out)}
    return _lay_out(task_id, task_dir, output.absolute(), inputs, out.voxel_size, block_size,
                    context, roi, fit, DoneMarkers.of_array_job(task_dir), config,
                    out if parallel else None, partial(renew_output, output.absolute()))


def plan_map(inputs: Mapping[str, str | Path], roi: Roi, block_size: Coordinate,
             context: Coordinate | None, log_dir: str | Path, task_id: str,
             config: dict | None = None) -> BlockPlan:
    """Check and lay out a map job over ``roi`` on the voxel grid of the first input (a
    partial result per block, `dacapo.blockwise.map_reduce`); ``config`` (JSON) describes
    the computation for the check of the results a re-run finds."""
    if "block" in inputs:
        raise ValueError("an input must not be called 'block' (reserved keyword)")
    inputs = {name: str(Path(path).absolute()) for name, path in inputs.items()}
    voxel_size = open_array(next(iter(inputs.values())), "input").voxel_size
    task_dir = Path(log_dir).absolute() / task_id
    return _lay_out(task_id, task_dir, None, inputs, voxel_size, block_size, context, roi,
                    "shrink", DoneMarkers.of_map_job(task_dir),
                    {"inputs": inputs, **(config or {})})


@dataclass(frozen=True)
class BlockGeometry:
    """The block grid of a blockwise run (world units)."""

    total_roi: Roi
    voxel_size: Coordinate
    block_size: Coordinate
    context: Coordinate

    def __post_init__(self) -> None:
        """Stitching compares each block with its direct neighbours only: the context must
        not reach past them (checked along axes with more than one block)."""
        for axis, (b, c, n) in enumerate(zip(self.block_size, self.context, self.grid_shape)):
            if n > 1 and c > b:
                raise ValueError(
                    f"blockwise watershed: block size {tuple(self.block_size / self.voxel_size)} "
                    f"voxels is smaller than the context {tuple(self.context / self.voxel_size)} "
                    f"voxels along axis {axis}; use blocks of at least the context"
                )

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return tuple(math.ceil(s / b) for s, b in zip(self.total_roi.shape, self.block_size))

    @property
    def ids_per_block(self) -> int:
        return int(np.prod((self.block_size + self.context * 2) / self.voxel_size))

    def block_index(self, write_roi: Roi) -> int:
        position = tuple((write_roi.offset - self.total_roi.offset) / self.block_size)
        return int(np.ravel_multi_index(position, self.grid_shape))

    def id_base(self, index: int) -> int:
        return index * self.ids_per_block

    def neighbour_write_roi(self, write_roi: Roi, step: tuple[int, ...]) -> Roi | None:
        """Write ROI of the block ``step`` grid steps away (clipped to the volume, as daisy's
        ``fit="shrink"`` does), or None outside the volume."""
        offset = write_roi.offset + Coordinate(step) * self.block_size
        roi = Roi(offset, self.block_size).intersect(self.total_roi)
        return None if roi.empty else roi

    def slices(self, roi: Roi, within: Roi) -> tuple[slice, ...]:
        """Voxel slices of ``roi`` in an array covering ``within``."""
        return ((roi - within.offset) / self.voxel_size).to_slices()
