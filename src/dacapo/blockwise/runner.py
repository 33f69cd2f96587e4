"""Blockwise processing of large zarr volumes with daisy 2.0.

`run_blockwise` splits a total write ROI into blocks, and for each block

1. reads every input in the block's *read ROI* (write ROI grown by ``context``
   on each side) — voxels outside an input's ROI are **zero-padded**, so the
   process function always receives the full context shape;
2. calls ``process(**arrays, block=BlockInfo(...))``, which returns the data
   for the block's *write ROI* only;
3. writes that data into the output array (clipped to the output ROI);
4. atomically creates a done-marker ``<log_dir>/<task_id>/done/<block_id>``.

A re-run with the same ``log_dir``/``task_id`` skips every block that has a
marker, so an interrupted or partially failed run can simply be restarted.
The marker is created only after the block's data has been written, so a
killed worker never leaves a block marked done with incomplete data.

Workers are separate OS processes (daisy 2.0 spawns ``python -m
daisy._subprocess_worker`` per worker; nothing is forked). With
``worker_command`` each worker is additionally started through a shell
command template, e.g. ``"srun -n1 {command}"``, which runs
``python -m dacapo.blockwise.worker <spec>``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import pickle
import shlex
import subprocess
import sys
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from funlib.geometry import Coordinate, Roi

from dacapo.store.arrays import read_padded

logger = logging.getLogger(__name__)

__all__ = [
    "BlockInfo",
    "BlockwiseError",
    "BlockwiseResult",
    "FailedBlock",
    "prepare_output",
    "run_blockwise",
]

_SPEC_FILE = "worker_spec.pkl"
_CONFIG_FILE = "run_config.json"


@dataclass(frozen=True)
class BlockInfo:
    """Geometry of the block handed to a process function (world units)."""

    read_roi: Roi
    write_roi: Roi
    voxel_size: Coordinate
    block_id: int


@dataclass(frozen=True)
class FailedBlock:
    """A block that was not completed: its id, write ROI and last error."""

    block_id: int
    write_roi: Roi
    error: str | None = None

    def __str__(self) -> str:
        return f"block {self.block_id} (write ROI {self.write_roi})"


@dataclass
class BlockwiseResult:
    """Block counts of one `run_blockwise` call.

    ``processed`` blocks were completed by this call, ``skipped`` blocks were
    already done (marker present) before it, ``failed`` lists the blocks that
    are still not done afterwards, ``retried`` the blocks that failed at least
    once in this call but succeeded on a retry (with their last error).
    """

    total: int
    processed: int
    skipped: int
    failed: list[FailedBlock] = field(default_factory=list)
    retried: list[FailedBlock] = field(default_factory=list)


class BlockwiseError(RuntimeError):
    """Raised when blocks remain unfinished after `run_blockwise`."""

    def __init__(self, message: str, result: BlockwiseResult | None = None):
        super().__init__(message)
        self.result = result

    @property
    def failed(self) -> list[FailedBlock]:
        """The blocks that were not completed."""
        return [] if self.result is None else self.result.failed


@dataclass(frozen=True)
class _Spec:
    """Everything a worker needs to process blocks (pickled to workers)."""

    process: Callable[..., np.ndarray]
    inputs: dict[str, str]
    output: str
    task_dir: str
    task_id: str


# --------------------------------------------------------------------------
# output preparation
# --------------------------------------------------------------------------


def prepare_output(
    path: str | Path,
    total_roi: Roi,
    voxel_size: Coordinate,
    dtype: Any,
    num_channels: int | None = None,
    write_size: Coordinate | None = None,
    axis_names: list[str] | None = None,
    units: list[str] | None = None,
):
    """Create (or reopen) the zarr output array for `run_blockwise`.

    ``write_size`` is the block size in world units (default: the whole ROI);
    it becomes the chunk size so that no two blocks share a chunk, which makes
    parallel writes safe. An existing array is reused as-is (mode ``"a"``, so
    finished blocks survive a re-run) if shape, dtype and voxel size match;
    otherwise a `ValueError` is raised. Returns the `funlib.persistence.Array`.
    """
    from funlib.persistence import open_ds, prepare_ds

    total_roi = Roi(total_roi.offset, total_roi.shape)
    voxel_size = Coordinate(voxel_size)
    write_size = Coordinate(total_roi.shape if write_size is None else write_size)
    for name, value in (
        ("total_roi offset", total_roi.offset),
        ("total_roi shape", total_roi.shape),
        ("write_size", write_size),
    ):
        if len(value) != len(voxel_size) or value % voxel_size != Coordinate(
            (0,) * len(voxel_size)
        ):
            raise ValueError(f"{name} {value} is not a multiple of the voxel size {voxel_size}")
    spatial_shape = tuple(total_roi.shape / voxel_size)
    chunk_spatial = tuple(min(c, s) for c, s in zip(write_size / voxel_size, spatial_shape))
    channel_shape = () if num_channels is None else (int(num_channels),)
    shape = channel_shape + spatial_shape
    chunk_shape = channel_shape + chunk_spatial
    dtype = np.dtype(dtype)
    if axis_names is not None and num_channels is not None and len(axis_names) == len(voxel_size):
        axis_names = ["c^", *axis_names]

    try:
        existing = open_ds(str(path), mode="r")
    except (FileNotFoundError, KeyError):
        existing = None
    if existing is not None:
        problems = []
        if tuple(existing.shape) != shape:
            problems.append(f"shape {tuple(existing.shape)} != {shape}")
        if existing.dtype != dtype:
            problems.append(f"dtype {existing.dtype} != {dtype}")
        if existing.voxel_size != voxel_size:
            problems.append(f"voxel size {existing.voxel_size} != {voxel_size}")
        if existing.roi != total_roi:
            problems.append(f"ROI {existing.roi} != {total_roi}")
        if problems:
            raise ValueError(
                f"existing array at {path} is incompatible with the requested output: "
                + "; ".join(problems)
                + ". Delete it or choose another output path."
            )
        logger.info("reusing existing output array %s", path)
        return open_ds(str(path), mode="r+")

    return prepare_ds(
        str(path),
        shape=shape,
        offset=total_roi.offset,
        voxel_size=voxel_size,
        axis_names=axis_names,
        units=units,
        chunk_shape=chunk_shape,
        dtype=dtype,
        mode="a",
    )


# --------------------------------------------------------------------------
# worker side
# --------------------------------------------------------------------------

_OPEN_ARRAYS: dict[tuple[str, str], Any] = {}


def _open(path: str, mode: str):
    """Open a zarr array once per worker process."""
    key = (path, mode)
    if key not in _OPEN_ARRAYS:
        from dacapo.store.ome import open_ds  # plain zarr arrays and OME-NGFF images

        _OPEN_ARRAYS[key] = open_ds(path, mode=mode)
    return _OPEN_ARRAYS[key]


def _done_dir(task_dir: str | Path) -> Path:
    return Path(task_dir) / "done"


def _failed_dir(task_dir: str | Path) -> Path:
    return Path(task_dir) / "failed"


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file and `os.replace`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _is_done(done_dir: str, block) -> bool:
    """daisy check function: the block's done-marker exists."""
    return os.path.exists(os.path.join(done_dir, str(block.block_id[1])))


def _read(array, roi: Roi) -> np.ndarray:
    """``array`` in ``roi``, zero-padded outside the array's ROI: straight from the zarr
    array (`read_padded`); arrays with lazy ops through `Array.to_ndarray`."""
    if array.lazy_ops:
        return array.to_ndarray(roi, fill_value=0)
    return read_padded(array._source_data, array.roi, array.voxel_size, roi)


def _process_one(spec: _Spec, read_roi: Roi, write_roi: Roi, block_id: int) -> None:
    """Read, process and write one block, then mark it done."""
    out = _open(spec.output, "r+")
    arrays = {}
    for name, path in spec.inputs.items():
        arrays[name] = _read(_open(path, "r"), read_roi)
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
    _atomic_write(_done_dir(spec.task_dir) / str(block_id), "")


def _run_block(spec: _Spec, block) -> None:
    """daisy block function: process a block, marking it failed on error.

    Errors are not re-raised (that would kill the worker process); the block is
    reported as failed and daisy retries it up to ``max_retries`` times.
    """
    block_id = block.block_id[1]
    try:
        _process_one(spec, block.read_roi, block.write_roi, block_id)
    except Exception:
        tb = traceback.format_exc()
        logger.error("block %s (write ROI %s) failed:\n%s", block_id, block.write_roi, tb)
        try:
            record = {"write_roi": str(block.write_roi), "error": tb}
            _atomic_write(_failed_dir(spec.task_dir) / f"{block_id}.json", json.dumps(record))
        except OSError:
            logger.exception("could not record failure of block %s", block_id)
        from daisy import BlockStatus

        block.status = BlockStatus.FAILED


def _worker_command_line(spec_path: str, daisy_context: str | None) -> list[str]:
    argv = [sys.executable, "-m", "dacapo.blockwise.worker", spec_path]
    if daisy_context is not None:
        argv += ["--daisy-context", daisy_context]
    return argv


def _launch_command_worker(*, spec_path: str, template: str, context=None) -> None:
    """daisy worker function: start one worker through the shell template."""
    daisy_context = None if context is None else context.to_env()
    argv = _worker_command_line(spec_path, daisy_context)
    command = template.format(
        command=shlex.join(argv), quoted_command=shlex.quote(shlex.join(argv))
    )
    env = dict(os.environ)
    if daisy_context is not None:
        env["DAISY_CONTEXT"] = daisy_context
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    logger.info("starting worker: %s", command)
    ret = subprocess.run(command, shell=True, env=env, check=False)
    if ret.returncode != 0:
        raise RuntimeError(f"worker command {command!r} exited with code {ret.returncode}")


def _save_spec(spec: _Spec, path: Path) -> None:
    """Pickle ``spec`` (with this process' ``sys.path``) for command workers."""
    try:
        import cloudpickle as pickler
    except ImportError:  # pragma: no cover - cloudpickle comes with daisy
        pickler = pickle
    with open(path.with_suffix(".tmp"), "wb") as f:
        pickle.dump(list(sys.path), f)
        pickler.dump(spec, f)
    os.replace(path.with_suffix(".tmp"), path)


def load_spec(path: str | Path) -> _Spec:
    """Load a spec written by `run_blockwise` (restoring ``sys.path`` first)."""
    with open(path, "rb") as f:
        for p in reversed(pickle.load(f)):
            if p not in sys.path:
                sys.path.insert(0, p)
        return pickle.load(f)


# --------------------------------------------------------------------------
# driver side
# --------------------------------------------------------------------------


def _default_log_dir(output: Path) -> Path:
    """``<container>.blockwise/<array path>`` next to the output zarr container."""
    parts = output.parts
    for i, part in enumerate(parts):
        if Path(part).suffix in (".zarr", ".n5", ".zarr2", ".zarr3"):
            container = Path(*parts[: i + 1])
            return container.with_name(container.name + ".blockwise").joinpath(*parts[i + 1 :])
    return output.with_name(output.name + ".blockwise")


def _check_alignment(name: str, roi: Roi, voxel_size: Coordinate) -> None:
    zero = Coordinate((0,) * len(voxel_size))
    if roi.offset % voxel_size != zero or roi.shape % voxel_size != zero:
        raise ValueError(
            f"{name}: ROI {roi} is not aligned with the voxel size {voxel_size}; "
            "block_size, context and roi must be multiples of every array's voxel size"
        )


def _check_chunk_alignment(out, total_write_roi: Roi, block_size: Coordinate) -> None:
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
        faces = range(s + st, e, st)
        bad = next((f for f in faces if f % c), None)
        if bad is not None:
            raise ValueError(
                f"parallel writes need blocks aligned to the output chunks: block size "
                f"{step} voxels and ROI start {start} voxels (relative to the output) put a "
                f"block face at voxel {bad} of axis {axis}, inside a chunk of shape {chunks}. "
                "Create the output with prepare_output(..., write_size=block_size) or use "
                "num_workers=1."
            )


def _check_config(task_dir: Path, config: dict) -> None:
    """Refuse to reuse done-markers written for a different block layout."""
    path = task_dir / _CONFIG_FILE
    done = _done_dir(task_dir)
    if path.exists():
        previous = json.loads(path.read_text())
        if previous != config and done.exists() and any(done.iterdir()):
            raise ValueError(
                f"{task_dir} holds done-markers of a run with a different configuration "
                f"({previous}) than this one ({config}). Use another task_id/log_dir or "
                f"delete {done} to start over."
            )
    _atomic_write(path, json.dumps(config, indent=2))


def _read_failure(task_dir: Path, block_id: int) -> str | None:
    path = _failed_dir(task_dir) / f"{block_id}.json"
    try:
        return json.loads(path.read_text())["error"]
    except (OSError, ValueError, KeyError):
        return None


def run_blockwise(
    process: Callable[..., np.ndarray],
    inputs: Mapping[str, str | Path],
    output: str | Path,
    block_size: Coordinate,
    context: Coordinate | None = None,
    num_workers: int | None = None,
    log_dir: str | Path | None = None,
    task_id: str = "dacapo",
    roi: Roi | None = None,
    worker_command: str | None = None,
    fit: str = "shrink",
    progress: bool = True,
    *,
    max_retries: int = 2,
    block_timeout: float | None = None,
) -> BlockwiseResult:
    """Apply ``process`` blockwise to ``inputs`` and write into ``output``.

    ``process`` must be picklable (a module-level function or a
    `functools.partial` of one). It is called once per block as
    ``process(**{name: ndarray}, block=BlockInfo(...))``: each input array
    covers the block's read ROI (write ROI grown by ``context``), keeps its
    leading channel axes, and is zero-padded where the read ROI leaves the
    input's ROI. It must return the data of the write ROI only (channels first
    if the output has channels), which is written to ``output``.

    ``output`` must already exist (see `prepare_output`). ``block_size``,
    ``context`` and ``roi`` are in world units; ``roi`` defaults to the output
    ROI. Done-markers and daisy's worker logs go to ``log_dir/task_id``
    (default: ``<container>.blockwise/<array>`` next to the output's zarr
    container); blocks with a marker are skipped. ``worker_command`` is a shell
    template containing ``{command}`` (the worker command as shell words, e.g.
    ``"srun -n1 {command}"``) or ``{quoted_command}`` (the same as one quoted
    word, e.g. ``"bash -c {quoted_command}"``). Failed blocks are retried
    ``max_retries`` times; ``block_timeout`` (seconds, default daisy's 600)
    kills a worker stuck on one block.

    Raises `BlockwiseError` (with ``.result``) if any block is left unfinished.
    """
    import daisy.v2 as daisy
    from daisy import logging as daisy_logging

    from dacapo.checks import check_output_not_input
    from dacapo.store.ome import open_ds  # plain zarr arrays and OME-NGFF images

    if "block" in inputs:
        raise ValueError("an input must not be called 'block' (reserved keyword)")
    output = Path(output)
    inputs = {name: str(path) for name, path in inputs.items()}
    check_output_not_input(output, inputs)
    out = open_ds(str(output), mode="r")
    voxel_size = out.voxel_size
    block_size = Coordinate(block_size)
    context = Coordinate((0,) * len(voxel_size)) if context is None else Coordinate(context)
    total_write_roi = out.roi if roi is None else Roi(roi.offset, roi.shape)
    if len(block_size) != len(voxel_size) or len(context) != len(voxel_size):
        raise ValueError(
            f"block_size {block_size} and context {context} must have "
            f"{len(voxel_size)} dimensions like the output's voxel size {voxel_size}"
        )
    block_write_roi = Roi(context, block_size)
    block_read_roi = Roi((0,) * len(context), block_size + context * 2)
    total_read_roi = total_write_roi.grow(context, context)

    _check_alignment("output block", Roi(total_write_roi.offset, block_size), voxel_size)
    _check_alignment("output roi", total_write_roi, voxel_size)
    for name, path in inputs.items():
        in_voxel_size = open_ds(path, mode="r").voxel_size
        if len(in_voxel_size) != len(voxel_size):
            raise ValueError(
                f"input {name!r} has {len(in_voxel_size)} spatial dims, output has "
                f"{len(voxel_size)}"
            )
        _check_alignment(
            f"input {name!r} read block",
            Roi(total_read_roi.offset, block_read_roi.shape),
            in_voxel_size,
        )
        _check_alignment(f"input {name!r} block step", Roi(block_size, block_size), in_voxel_size)

    if num_workers is None:
        num_workers = os.cpu_count() or 1
    if num_workers > 1 or worker_command is not None:
        _check_chunk_alignment(out, total_write_roi, block_size)

    log_dir = _default_log_dir(output.absolute()) if log_dir is None else Path(log_dir)
    log_dir = log_dir.absolute()
    task_dir = log_dir / task_id
    _done_dir(task_dir).mkdir(parents=True, exist_ok=True)
    _failed_dir(task_dir).mkdir(parents=True, exist_ok=True)
    _check_config(
        task_dir,
        {
            "output": str(output.absolute()),
            "roi": [list(total_write_roi.offset), list(total_write_roi.shape)],
            "block_size": list(block_size),
            "context": list(context),
            "fit": fit,
        },
    )

    # all blocks, with the ids daisy will use
    graph = daisy.BlockwiseDependencyGraph(
        task_id, block_read_roi, block_write_roi, False, fit, total_read_roi=total_read_roi
    )
    blocks = {b.block_id[1]: b.write_roi for b, _ in graph.enumerate_all_dependencies()}
    done_dir = _done_dir(task_dir)

    def done_ids() -> set[int]:
        names = {p.name for p in done_dir.iterdir()}
        return {i for i in blocks if str(i) in names}

    done_before = done_ids()
    for stale in _failed_dir(task_dir).glob("*.json"):
        stale.unlink()
    for stale in done_dir.glob(".*.tmp"):  # markers of a killed run, cut before the rename
        stale.unlink()
    todo = len(blocks) - len(done_before)
    num_workers = max(1, min(num_workers, max(todo, 1)))
    logger.info(
        "task %s: %d blocks (%d already done), %d workers, logs in %s",
        task_id,
        len(blocks),
        len(done_before),
        num_workers,
        task_dir,
    )

    spec = _Spec(process, inputs, str(output.absolute()), str(task_dir), task_id)
    if worker_command is None:
        process_function: Callable = functools.partial(_run_block, spec)
        host = "127.0.0.1"
    else:
        if "{command}" not in worker_command and "{quoted_command}" not in worker_command:
            raise ValueError(
                "worker_command must contain '{command}' or '{quoted_command}', got "
                f"{worker_command!r}"
            )
        spec_path = task_dir / _SPEC_FILE
        _save_spec(spec, spec_path)
        process_function = functools.partial(
            _launch_command_worker, spec_path=str(spec_path), template=worker_command
        )
        host = None

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Task\(check_function", category=UserWarning)
        task = daisy.Task(
            task_id,
            total_read_roi,
            block_read_roi,
            block_write_roi,
            process_function=process_function,
            check_function=functools.partial(_is_done, str(done_dir)),
            read_write_conflict=False,
            fit=fit,
            max_workers=num_workers,
            max_retries=max_retries,
            timeout=block_timeout,
            tracking_path=False,
        )

    previous_log_dir = daisy_logging.get_log_basedir()
    daisy_logging.set_log_basedir(log_dir)
    abandoned: str | None = None
    try:
        if todo > 0:
            states = daisy.run_blockwise(
                task, progress=progress, return_states=True, summary=False, host=host
            )
            state = states[task_id]
            if state.abandoned:
                abandoned = state.abandon_reason or state.last_worker_error
    except RuntimeError as e:  # daisy raises when it abandons a task
        abandoned = str(e)
    finally:
        daisy_logging.set_log_basedir(previous_log_dir)

    done_after = done_ids()
    failed = [
        FailedBlock(i, blocks[i], _read_failure(task_dir, i))
        for i in sorted(set(blocks) - done_after)
    ]
    retried = [
        FailedBlock(i, blocks[i], error)
        for i in sorted(done_after - done_before)
        if (error := _read_failure(task_dir, i)) is not None
    ]
    for b in retried:
        last = b.error.strip().splitlines()[-1] if b.error else "unknown error"
        logger.warning("task %s: %s failed and succeeded on a retry (%s)", task_id, b, last)
    result = BlockwiseResult(
        total=len(blocks),
        processed=len(done_after - done_before),
        skipped=len(done_before),
        failed=failed,
        retried=retried,
    )
    logger.info(
        "task %s: %d blocks processed, %d skipped, %d failed, %d retried",
        task_id,
        result.processed,
        result.skipped,
        len(failed),
        len(retried),
    )
    if failed:
        shown = failed[:10]
        lines = [f"  {b}" for b in shown]
        if len(failed) > len(shown):
            lines.append(f"  ... and {len(failed) - len(shown)} more")
        errors = [b for b in failed if b.error]
        how = (
            "were not completed (workers kept crashing)"
            if abandoned
            else f"failed (after {max_retries} retries)"
        )
        msg = f"blockwise task {task_id!r}: {len(failed)} of {len(blocks)} blocks {how}:\n"
        msg += "\n".join(lines)
        if errors:
            msg += f"\nerror of {errors[0]}:\n{errors[0].error.rstrip()}"
        if abandoned:
            msg += f"\ndaisy abandoned the task: {abandoned}"
        msg += f"\nworker logs: {task_dir}. Re-run to retry only the unfinished blocks."
        raise BlockwiseError(msg, result)
    return result
