"""The worker side of a blockwise job: read a block's inputs, process, write, mark done.

`run_block` is what a daisy worker calls per block (in a local worker process, or in a
process started through a worker command as ``python -m dacapo.blockwise <spec>``, which
connects to the daisy server named in ``DAISY_CONTEXT`` and processes blocks until
none are left). A block is marked done (``<task dir>/done/<block id>``, created
atomically) only after its data has been written, so a killed worker never leaves a block
marked done with incomplete data; a failure is recorded in ``<task dir>/failed/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
from daisy import BlockStatus, Client
from funlib.geometry import Coordinate, Roi

from dacapo.blockwise.report import failed_dir
from dacapo.io.arrays import atomic_write_text, open_array, read_array

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BlockInfo:
    """Geometry of the block handed to a process function (world units)."""

    read_roi: Roi
    write_roi: Roi
    voxel_size: Coordinate
    block_id: int


@dataclass(frozen=True)
class Spec:
    """Everything a worker needs to process blocks (pickled to workers)."""

    process: Callable[..., np.ndarray]
    inputs: dict[str, str]
    output: str
    task_dir: str
    task_id: str


def done_dir(task_dir: str | Path) -> Path:
    """Where the done-markers of a job's blocks are (``<block id>``, empty files)."""
    return Path(task_dir) / "done"


_OPEN_ARRAYS: dict[tuple[str, str], Any] = {}


def _open(path: str, mode: str):
    """Open an array once per worker process."""
    key = (path, mode)
    if key not in _OPEN_ARRAYS:
        _OPEN_ARRAYS[key] = open_array(path, path, mode)
    return _OPEN_ARRAYS[key]


def process_one(spec: Spec, read_roi: Roi, write_roi: Roi, block_id: int) -> None:
    """Read, process and write one block, then mark it done."""
    out = _open(spec.output, "r+")
    arrays = {name: read_array(_open(path, "r"), read_roi) for name, path in spec.inputs.items()}
    info = BlockInfo(read_roi, write_roi, out.voxel_size, block_id)
    data = np.asarray(spec.process(**arrays, block=info))
    expected = tuple(out.shape[: out.channel_dims]) + tuple(write_roi.shape / out.voxel_size)
    if out.channel_dims == 0 and data.shape == (1, *expected):
        data = data[0]  # a single-channel output is stored without a channel axis
    if data.shape != expected:
        raise ValueError(
            f"process returned an array of shape {data.shape} for block {block_id} "
            f"(write ROI {write_roi}), expected {expected} (channels first, write ROI only)"
        )
    target = write_roi.intersect(out.roi)
    if target != write_roi:
        rel = (target - write_roi.offset) / out.voxel_size
        data = data[(slice(None),) * out.channel_dims + rel.to_slices()]
    out[target] = data
    atomic_write_text(done_dir(spec.task_dir) / str(block_id), "")


def run_block(spec: Spec, block) -> None:
    """daisy block function: process a block, marking it failed on error.

    Errors are not re-raised (that would kill the worker process); the block is
    reported as failed and daisy retries it up to ``max_retries`` times.
    """
    block_id = block.block_id[1]
    try:
        process_one(spec, block.read_roi, block.write_roi, block_id)
    except Exception:
        tb = traceback.format_exc()
        logger.error("block %s (write ROI %s) failed:\n%s", block_id, block.write_roi, tb)
        try:
            record = {"write_roi": str(block.write_roi), "error": tb}
            atomic_write_text(failed_dir(spec.task_dir) / f"{block_id}.json", json.dumps(record))
        except OSError:
            logger.exception("could not record failure of block %s", block_id)
        block.status = BlockStatus.FAILED


def save_spec(spec: Spec, path: Path) -> None:
    """Pickle ``spec`` (with this process' ``sys.path``) for command workers."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(list(sys.path), f)
        cloudpickle.dump(spec, f)
    os.replace(tmp, path)


def load_spec(path: str | Path) -> Spec:
    """Load a spec written by `save_spec` (restoring ``sys.path`` first)."""
    with open(path, "rb") as f:
        for p in reversed(pickle.load(f)):
            if p not in sys.path:
                sys.path.insert(0, p)
        return pickle.load(f)


def main(argv: list[str] | None = None) -> None:
    """Run the daisy client loop for the pickled spec given on the command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("spec", help="worker spec file written by run_blockwise")
    parser.add_argument("--daisy-context", default=None,
                        help="daisy context string (overrides the DAISY_CONTEXT variable)")
    args = parser.parse_args(argv)
    if args.daisy_context:
        os.environ["DAISY_CONTEXT"] = args.daisy_context
    spec = load_spec(args.spec)
    client = Client()
    logger.info("worker for task %s connected: %s", spec.task_id, client.connected)
    while True:
        with client.acquire_block() as block:
            if block is None:
                break
            run_block(spec, block)

