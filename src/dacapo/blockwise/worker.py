"""The worker side of a blockwise job: read a block's inputs, process, write, mark done.

`run_block` is what a daisy worker calls per block (in a local worker process, or in a
process started through a worker command as ``python -m dacapo.blockwise <spec>``, which
connects to the daisy server named in ``DAISY_CONTEXT`` and processes blocks until
none are left). A job writes each block's data either into an output array (the job's
``output``) or, for a map job (`dacapo.blockwise.map_reduce`), as the block's partial
result. A block is marked done (`DoneMarkers`, created atomically) only after its data
has been written, so a killed worker never leaves a block marked done with incomplete
data; a failure is recorded in ``<task dir>/failed/``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import pickle
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
from daisy import BlockStatus, Client
from funlib.geometry import Coordinate, Roi

from dacapo.blockwise.report import failed_dir
from dacapo.io.arrays import atomic_write_bytes, atomic_write_text, open_array, read_array

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BlockInfo:
    """Geometry of the block handed to a process function (world units)."""

    read_roi: Roi
    write_roi: Roi
    voxel_size: Coordinate
    block_id: int

    @property
    def region(self) -> tuple[slice, ...]:
        """Voxel slices of the write ROI inside arrays read over the read ROI."""
        return ((self.write_roi - self.read_roi.offset) / self.voxel_size).to_slices()


@dataclass(frozen=True)
class DoneMarkers:
    """Where a job records its finished blocks: ``<folder>/<block id><suffix>``, written
    atomically after the block's data. An array job's markers are empty files in
    ``<task dir>/done/``; a map job's are its partial results, ``<task dir>/results/<block
    id>.npz`` (the result is the marker). ``what`` names them in messages."""

    folder: Path
    suffix: str = ""
    what: str = "done-markers of a run"

    @classmethod
    def of_array_job(cls, task_dir: str | Path) -> DoneMarkers:
        return cls(Path(task_dir) / "done")

    @classmethod
    def of_map_job(cls, task_dir: str | Path) -> DoneMarkers:
        return cls(Path(task_dir) / "results", ".npz", "block results of another evaluation")

    def path(self, block_id: int) -> Path:
        return self.folder / f"{block_id}{self.suffix}"

    def is_done(self, block_id: int) -> bool:
        return self.path(block_id).exists()

    def ids(self) -> set[int]:
        """The ids of the blocks marked done."""
        names = (p.name for p in self.folder.iterdir() if not p.name.startswith("."))
        return {int(n[: len(n) - len(self.suffix)]) for n in names
                if n.endswith(self.suffix) and n[: len(n) - len(self.suffix)].isdigit()}

    def any(self) -> bool:
        return self.folder.exists() and bool(self.ids())

    def mark(self, block_id: int, result: Mapping[str, np.ndarray] | None = None) -> None:
        """Mark a block done: an empty marker, or (a map job) its partial ``result``."""
        if result is None:
            atomic_write_text(self.path(block_id), "")
            return
        buffer = io.BytesIO()
        np.savez(buffer, **result)
        atomic_write_bytes(self.path(block_id), buffer.getvalue())

    def clear(self) -> None:
        """Remove every marker (they describe an array that no longer exists)."""
        for marker in self.folder.iterdir():
            marker.unlink()

    def clear_partial(self) -> None:
        """Remove the temporary files of markers cut before their rename."""
        for stale in self.folder.glob(".*.tmp"):
            stale.unlink()


@dataclass(frozen=True)
class Spec:
    """Everything a worker needs to process blocks (pickled to workers). ``output`` None:
    a map job (``process`` returns the block's partial result, ``{name: array}``).
    ``within``: inputs read as 0 outside this ROI too (None: only outside their own)."""

    process: Callable[..., Any]
    inputs: dict[str, str]
    output: str | None
    task_dir: str
    task_id: str
    markers: DoneMarkers
    within: Roi | None = None


_OPEN_ARRAYS: dict[tuple[str, str], Any] = {}


def _open(path: str, mode: str):
    """Open an array once per worker process."""
    key = (path, mode)
    if key not in _OPEN_ARRAYS:
        _OPEN_ARRAYS[key] = open_array(path, path, mode)
    return _OPEN_ARRAYS[key]


def close_arrays() -> None:
    """Forget the arrays opened by `process_one` (after a job run in this process: a later
    job may find other arrays at the same paths)."""
    _OPEN_ARRAYS.clear()


def read_within(array, read_roi: Roi, roi: Roi | None) -> np.ndarray:
    """``read_roi`` of ``array`` with 0 outside ``roi`` (None: everywhere) and outside the
    array's ROI."""
    inside = read_roi if roi is None else read_roi.intersect(roi)
    data = read_array(array, inside)
    if inside == read_roi:
        return data
    vs = array.voxel_size
    out = np.zeros(data.shape[: data.ndim - vs.dims] + tuple(read_roi.shape / vs), data.dtype)
    out[(Ellipsis, *((inside - read_roi.offset) / vs).to_slices())] = data
    return out


def process_one(spec: Spec, read_roi: Roi, write_roi: Roi, block_id: int) -> None:
    """Read, process and write one block, then mark it done."""
    arrays = {name: read_within(_open(path, "r"), read_roi, spec.within)
              for name, path in spec.inputs.items()}
    if spec.output is None:  # a map job: the partial result is the block's output and marker
        voxel_size = _open(next(iter(spec.inputs.values())), "r").voxel_size
        info = BlockInfo(read_roi, write_roi, voxel_size, block_id)
        spec.markers.mark(block_id, spec.process(**arrays, block=info))
        return
    out = _open(spec.output, "r+")
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
    spec.markers.mark(block_id)


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

