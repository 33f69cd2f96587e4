"""Input validation: small checks that raise one clear error naming the array or field.

Every check raises `InputError` (a `ValueError`) whose message starts with the name of
the array or field it is about, followed by the problem, on one line. The CLI turns it
into ``error: <message>`` and exit code 2.

Two kinds of checks:

- *metadata* checks (shape, dtype, voxel size, ROI, dimensionality, paths) cost nothing;
- *value* checks (`scan_array`, `check_finite_array`, `data_problems`) read an array once,
  chunk by chunk, with memory bounded by ``budget_bytes`` (default 64 MiB), so they work
  on volumes bigger than memory.

`data_problems(task_config, dataset, architecture)` runs every check that applies to a
dataset for a task, and is what `RunConfig.problems` (hence ``dacapo verify`` and
``dacapo train``) calls before anything is written. Choices:

- GT must not be float for instance-label tasks (Affinities, InnerDistance): ids stored
  as floats lose precision above 2**24 and are usually a mistake (a probability map).
- GT values must be finite and non-negative for every task (0 is background).
- OneHot: class ids in ``[0, number of classes)``. Distance/HotDistance with C > 1
  channels and a single GT array: class ids in ``[0, C]`` (channel i is ``gt == i + 1``).
- A mask must have the GT's voxel size and ROI (same shape), and be non-zero somewhere.
- Float raw must be finite everywhere (a NaN spreads through every convolution).
"""

from __future__ import annotations

import errno
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from funlib.geometry import Coordinate, Roi

logger = logging.getLogger(__name__)

__all__ = [
    "InputError",
    "ValueSummary",
    "check_channels",
    "check_dims",
    "check_finite",
    "check_finite_array",
    "check_integer_dtype",
    "check_label_range",
    "check_mask",
    "check_neighborhood_dims",
    "check_not_input_array",
    "check_non_negative",
    "check_not_empty",
    "check_output_location",
    "check_output_not_input",
    "check_overlap",
    "check_voxel_sizes_divide",
    "data_problems",
    "run_data_problems",
    "scan_array",
    "unwrap_worker_message",
]

DEFAULT_BUDGET = 64 * 2**20


class InputError(ValueError):
    """Bad input data or configuration; the message names the array/field and the problem."""


# --------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------


def _first_index(bad: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape))


def _label_text(value: float) -> str:
    """A label value as written: integers exactly (no 3e+06), other floats with %g."""
    if isinstance(value, int | np.integer) or float(value).is_integer():
        return str(int(value))
    return f"{value:g}"


def _non_finite_message(name: str, nan: int, inf: int, first: tuple[int, ...] | None) -> str:
    return (f"{name}: {nan + inf} non-finite value(s) ({nan} NaN, {inf} Inf), "
            f"first at voxel {first}")


def _negative_message(name: str, value: float, first: tuple[int, ...] | None) -> str:
    return (f"{name}: negative label {_label_text(value)} (labels must be >= 0; 0 is "
            "background), "
            f"first at voxel {first}")


def _too_large_message(name: str, value: float, num_classes: int, detail: str = "") -> str:
    return (f"{name}: label {_label_text(value)} >= number of classes {num_classes} "
            f"(labels must lie in 0..{num_classes - 1}{detail})")


def check_finite(data: np.ndarray, name: str) -> None:
    """Raise if ``data`` holds NaN or ±Inf (integer data always passes)."""
    data = np.asarray(data)
    if data.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(data)
    if bad.any():
        n_nan = int(np.isnan(data).sum())
        raise InputError(_non_finite_message(name, n_nan, int(bad.sum()) - n_nan,
                                             _first_index(bad)))


def check_non_negative(data: np.ndarray, name: str) -> None:
    """Raise if labels are negative (0 is background, objects/classes are > 0)."""
    data = np.asarray(data)
    if data.size and data.dtype.kind in "if" and data.min() < 0:
        raise InputError(_negative_message(name, data.min().item(), _first_index(data < 0)))


def check_label_range(data: np.ndarray, num_classes: int, name: str) -> None:
    """Raise unless every label lies in ``[0, num_classes)``."""
    data = np.asarray(data)
    check_non_negative(data, name)
    if data.size and data.max() >= num_classes:
        raise InputError(_too_large_message(name, data.max().item(), num_classes))


def check_integer_dtype(dtype: Any, name: str, why: str = "instance labels") -> None:
    """Raise unless ``dtype`` is an integer (or bool) dtype."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "biu":
        raise InputError(
            f"{name}: dtype {dtype} is not an integer type; {why} must be stored as "
            "integers (e.g. uint32, uint64)"
        )


# --------------------------------------------------------------------------
# geometry and metadata
# --------------------------------------------------------------------------


def check_not_empty(shape: Sequence[int] | Roi, name: str) -> None:
    """Raise if an array shape or ROI has no voxels."""
    if isinstance(shape, Roi):
        if shape.empty or any(s <= 0 for s in shape.shape):
            raise InputError(f"{name}: empty region {shape}")
        return
    if any(int(s) <= 0 for s in shape):
        raise InputError(f"{name}: empty array (shape {tuple(int(s) for s in shape)})")


def check_overlap(roi_a: Roi, roi_b: Roi, name_a: str, name_b: str) -> Roi:
    """Raise if two ROIs don't overlap; return their intersection."""
    inter = roi_a.intersect(roi_b)
    if inter.empty or any(s <= 0 for s in inter.shape):
        raise InputError(f"{name_a}: ROI {roi_a} does not overlap {name_b} ROI {roi_b}")
    return inter


def check_voxel_sizes_divide(
    voxel_size: Sequence[int], other: Sequence[int], name: str, other_name: str
) -> None:
    """Raise unless one voxel size is an integer multiple of the other on every axis."""
    a, b = Coordinate(voxel_size), Coordinate(other)
    if a.dims != b.dims:
        raise InputError(
            f"{name}: voxel size {tuple(a)} has {a.dims} dims, {other_name} "
            f"{tuple(b)} has {b.dims}"
        )
    if not (all(x % y == 0 for x, y in zip(a, b)) or all(y % x == 0 for x, y in zip(a, b))):
        raise InputError(
            f"{name}: voxel size {tuple(a)} and {other_name} voxel size {tuple(b)} do not "
            "divide each other (one must be an integer multiple of the other on every axis)"
        )


def check_dims(dims: int, expected: int, name: str, what: str) -> None:
    """Raise unless an array has ``expected`` spatial dimensions."""
    if dims != expected:
        raise InputError(
            f"{name}: {dims} spatial dimensions where {expected} are expected ({what})"
        )


def check_neighborhood_dims(neighborhood: Iterable[Sequence[int]], dims: int, name: str) -> None:
    """Raise unless every affinity offset has ``dims`` entries."""
    bad = sorted({len(tuple(o)) for o in neighborhood} - {dims})
    if bad:
        raise InputError(
            f"{name}: neighborhood offsets are {bad[0]}D but the data are {dims}D "
            f"(each offset needs {dims} entries)"
        )


def _spatial_and_channels(shape: Sequence[int], dims: int) -> tuple[tuple[int, ...], int | None]:
    shape = tuple(int(s) for s in shape)
    if len(shape) == dims:
        return shape, None
    if len(shape) == dims + 1:
        return shape[1:], shape[0]
    raise InputError(f"shape {shape} has more than one channel axis over {dims} spatial dims")


def check_channels(shape: Sequence[int], dims: int, num_channels: int, name: str,
                   channel_names: Sequence[str] | None = None) -> None:
    """Raise unless a GT array fits ``num_channels`` task channels.

    Accepted: no channel axis, one channel, or exactly ``num_channels`` channels.
    """
    try:
        _, c = _spatial_and_channels(shape, dims)
    except InputError as e:
        raise InputError(f"{name}: {e}") from None
    if c is not None and c not in (1, num_channels):
        names = f" {list(channel_names)}" if channel_names else ""
        raise InputError(
            f"{name}: {c} channels (shape {tuple(shape)}) but the task has {num_channels} "
            f"channel(s){names}; give one array per channel or a single class-id array"
        )


def check_mask(mask, gt, name: str = "mask", gt_name: str = "gt") -> None:
    """Raise unless ``mask`` (funlib Array) has the voxel size and ROI (shape) of ``gt``."""
    if mask.voxel_size != gt.voxel_size:
        raise InputError(
            f"{name}: voxel size {tuple(mask.voxel_size)} differs from {gt_name} voxel size "
            f"{tuple(gt.voxel_size)}"
        )
    if mask.roi != gt.roi:
        m_shape = tuple(mask.roi.shape / mask.voxel_size)
        g_shape = tuple(gt.roi.shape / gt.voxel_size)
        raise InputError(
            f"{name}: shape {m_shape} at offset {tuple(mask.roi.offset)} differs from "
            f"{gt_name} shape {g_shape} at offset {tuple(gt.roi.offset)} (a mask must cover "
            "exactly the ground truth)"
        )


# --------------------------------------------------------------------------
# paths
# --------------------------------------------------------------------------


def _resolved(path: str | Path) -> Path:
    return Path(os.path.abspath(os.fspath(path))).resolve()


def check_not_input_array(output: str | Path, input_path: str | Path, name: str = "output"
                          ) -> None:
    """Raise if ``output`` is the very array ``input_path`` (checked before anything is
    opened for writing; `check_output_not_input` also refuses nested paths)."""
    if _resolved(output) == _resolved(input_path):
        raise InputError(f"{name} {str(output)!r} is the input array; choose another path")


def check_output_not_input(output: str | Path, inputs: dict[str, str | Path], name: str = "output"
                           ) -> None:
    """Raise if ``output`` is, contains or lies inside one of the ``inputs`` paths."""
    out = _resolved(output)
    for in_name, path in inputs.items():
        if path is None:
            continue
        p = _resolved(path)
        if out == p or p in out.parents or out in p.parents:
            raise InputError(
                f"{name}: {str(output)!r} is (or overlaps) the {in_name} array {str(path)!r}; "
                "inputs are never written, choose another output path"
            )


def check_output_location(path: str | Path, needed_bytes: int | None = None,
                          name: str = "output") -> None:
    """Raise unless ``path`` can be created: its nearest existing ancestor is a writable
    directory (not a file, not on a read-only file system) with at least ``needed_bytes``
    free. Leaves nothing behind (a probe folder is created and removed at once)."""
    p = Path(os.path.abspath(os.fspath(path)))
    existing = p
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    target = existing if existing.is_dir() else None
    if existing != p and target is None:
        raise InputError(f"{name}: cannot create {str(path)!r}: {str(existing)!r} is a file")
    if existing == p and not p.is_dir():
        raise InputError(f"{name}: {str(path)!r} exists and is a file, not a zarr array folder")
    probe = existing
    if not os.access(probe, os.W_OK | os.X_OK):
        try:
            ro = bool(os.statvfs(probe).f_flag & os.ST_RDONLY)
        except OSError:
            ro = False
        why = "is on a read-only file system" if ro else "is not writable"
        raise InputError(f"{name}: cannot write {str(path)!r}: {str(probe)!r} {why}")
    try:  # the definitive test (root ignores modes; immutable dirs, ACLs, sysfs...)
        os.rmdir(tempfile.mkdtemp(prefix=".dacapo-write-probe-", dir=probe))
    except OSError as e:
        raise InputError(
            f"{name}: cannot write {str(path)!r}: {str(probe)!r}: {e.strerror}"
        ) from None
    if needed_bytes:
        free = shutil.disk_usage(probe).free
        if free < needed_bytes:
            raise InputError(
                f"{name}: not enough space for {str(path)!r}: {free / 1e9:.3g} GB free at "
                f"{str(probe)!r}, the output needs up to {needed_bytes / 1e9:.3g} GB "
                f"({os.strerror(errno.ENOSPC)})"
            )


# --------------------------------------------------------------------------
# chunked scans of (possibly huge) arrays
# --------------------------------------------------------------------------


@dataclass
class ValueSummary:
    """Statistics of one pass over an array (NaN ignored in min/max)."""

    size: int = 0
    nonzero: int = 0
    nan: int = 0
    inf: int = 0
    non_integral: int = 0
    min: float = math.inf
    max: float = -math.inf
    first_non_finite: tuple[int, ...] | None = None
    first_negative: tuple[int, ...] | None = None


def _blocks(shape: tuple[int, ...], chunks: tuple[int, ...], itemsize: int,
            budget_bytes: int) -> Iterator[tuple[slice, ...]]:
    """Chunk-aligned boxes covering ``shape``, each at most ~``budget_bytes``."""
    step = [max(1, int(c)) for c in chunks]
    # grow along the last axes first (contiguous) while within budget
    for ax in reversed(range(len(shape))):
        while step[ax] < shape[ax] and np.prod(step) * itemsize * 2 <= budget_bytes:
            step[ax] = min(shape[ax], step[ax] * 2)
    grid = [range(0, s, st) for s, st in zip(shape, step)]
    for corner in np.ndindex(*(len(g) for g in grid)):
        yield tuple(
            slice(g[i], min(s, g[i] + st))
            for g, i, s, st in zip(grid, corner, shape, step)
        )


def scan_array(array, budget_bytes: int = DEFAULT_BUDGET) -> ValueSummary:
    """One chunked pass over a funlib `Array` (or numpy array): min, max, counts."""
    source = getattr(array, "_source_data", array)
    shape = tuple(int(s) for s in source.shape)
    chunks = tuple(getattr(source, "chunks", None) or shape)
    if len(chunks) != len(shape) or not all(isinstance(c, (int, np.integer)) for c in chunks):
        chunks = shape
    dtype = np.dtype(source.dtype)
    s = ValueSummary()
    for sl in _blocks(shape, chunks, dtype.itemsize, budget_bytes):
        block = np.asarray(source[sl])
        s.size += block.size
        if block.size == 0:
            continue
        corner = tuple(x.start for x in sl)
        if dtype.kind in "fc":
            finite = np.isfinite(block)
            if not finite.all():
                n_nan = int(np.isnan(block).sum())
                s.nan += n_nan
                s.inf += int((~finite).sum()) - n_nan
                if s.first_non_finite is None:
                    idx = _first_index(~finite)
                    s.first_non_finite = tuple(c + i for c, i in zip(corner, idx))
                values = block[finite]
            else:
                values = block
            if values.size:
                s.non_integral += int(np.count_nonzero(values != np.round(values)))
        else:
            values = block
        s.nonzero += int(np.count_nonzero(block))
        if values.size:
            lo, hi = values.min(), values.max()
            s.min = min(s.min, lo.item())
            s.max = max(s.max, hi.item())
            if lo < 0 and s.first_negative is None:
                idx = _first_index(block < 0)
                s.first_negative = tuple(c + i for c, i in zip(corner, idx))
    return s


def check_finite_array(array, name: str, budget_bytes: int = DEFAULT_BUDGET) -> None:
    """Raise if a (float) array holds NaN/Inf anywhere; reads it chunk by chunk."""
    dtype = np.dtype(getattr(array, "dtype", np.float32))
    if dtype.kind not in "fc":
        return
    s = scan_array(array, budget_bytes)
    if s.nan or s.inf:
        raise InputError(_non_finite_message(name, s.nan, s.inf, s.first_non_finite))


# --------------------------------------------------------------------------
# task x dataset
# --------------------------------------------------------------------------


def _task_kind(task_config) -> tuple[Any, str]:
    """(innermost task config, kind) with kind in distance/onehot/affinities/inner/other."""
    from dacapo.experiments import tasks

    tc = task_config
    while isinstance(tc, tasks.PretrainedTaskConfig):
        tc = tc.sub_task_config
    if isinstance(tc, tasks.AffinitiesTaskConfig):
        return tc, "affinities"
    if isinstance(tc, tasks.InnerDistanceTaskConfig):
        return tc, "inner"
    if isinstance(tc, tasks.OneHotTaskConfig):
        return tc, "onehot"
    if isinstance(tc, (tasks.DistanceTaskConfig, tasks.HotDistanceTaskConfig)):
        return tc, "distance"
    return tc, "other"


def _collect(problems: list[str], func, *args, **kwargs) -> bool:
    try:
        func(*args, **kwargs)
        return True
    except InputError as e:
        problems.append(str(e))
        return False


def data_problems(task_config, dataset, architecture=None, scan: bool = True,
                  budget_bytes: int = DEFAULT_BUDGET) -> list[str]:
    """Every problem of an opened dataset (``.name``, ``.raw``, ``.gt``, ``.mask``) for a task.

    Metadata first (dims, channels, dtype, mask geometry, empty arrays); with ``scan``
    the arrays' values are read once each (raw finite; GT finite, non-negative, in range;
    mask not all zero). Returns one message per problem (empty: fine).
    """
    prefix = f"dataset {dataset.name!r}"
    raw, gt, mask = dataset.raw, dataset.gt, dataset.mask
    problems: list[str] = []
    dims = gt.voxel_size.dims
    ok = _collect(problems, check_not_empty, raw.shape, f"{prefix}: raw")
    ok &= _collect(problems, check_not_empty, gt.shape, f"{prefix}: gt")
    if architecture is not None:
        ok &= _collect(problems, check_dims, raw.voxel_size.dims, len(architecture.input_shape),
                       f"{prefix}: raw", f"the architecture {architecture.name!r} is "
                       f"{len(architecture.input_shape)}D")
    tc, kind = _task_kind(task_config)
    if kind == "affinities":
        ok &= _collect(problems, check_neighborhood_dims, tc.neighborhood, dims,
                       f"{prefix}: task {tc.name!r}")
    if kind in ("affinities", "inner"):
        ok &= _collect(problems, check_integer_dtype, gt.dtype, f"{prefix}: gt",
                       f"instance labels for a {type(tc).__name__}")
        ok &= _collect(problems, check_channels, gt.shape, dims, 1, f"{prefix}: gt")
    elif kind == "onehot":
        ok &= _collect(problems, check_channels, gt.shape, dims, 1, f"{prefix}: gt")
    elif kind == "distance":
        ok &= _collect(problems, check_channels, gt.shape, dims, len(tc.channels),
                       f"{prefix}: gt", tc.channels)
    if mask is not None:
        ok &= _collect(problems, check_mask, mask, gt, f"{prefix}: mask", "gt")
    if not ok or not scan:
        return problems

    _collect(problems, check_finite_array, raw, f"{prefix}: raw", budget_bytes)
    if kind != "other":
        s = scan_array(gt, budget_bytes)
        name = f"{prefix}: gt"
        if s.nan or s.inf:
            problems.append(_non_finite_message(name, s.nan, s.inf, s.first_non_finite))
        elif s.min < 0:
            problems.append(_negative_message(name, s.min, s.first_negative))
        elif kind == "onehot" and s.max >= len(tc.classes):
            problems.append(_too_large_message(name, s.max, len(tc.classes),
                                               f" for classes {list(tc.classes)}"))
        elif kind == "onehot" and s.non_integral:
            problems.append(f"{name}: {s.non_integral} non-integral class id(s)")
        elif (kind == "distance" and len(tc.channels) > 1
              and _spatial_and_channels(gt.shape, dims)[1] in (None, 1)
              and s.max > len(tc.channels)):
            problems.append(
                f"{name}: class id {_label_text(s.max)} > number of channels {len(tc.channels)} "
                f"{list(tc.channels)} (a single GT array holds ids 0..{len(tc.channels)}, "
                "channel i is gt == i + 1)"
            )
    if mask is not None and scan_array(mask, budget_bytes).nonzero == 0:
        problems.append(f"{prefix}: mask: no non-zero voxel (nothing is labelled)")
    return problems


def run_data_problems(run_config, scan: bool = True) -> list[str]:
    """`data_problems` of every training and validation dataset of a run (each once)."""
    problems: list[str] = []
    seen: set[tuple] = set()
    split = run_config.datasplit_config
    for dconf in list(split.train) + list(split.validate):
        key = (dconf.raw, dconf.gt, dconf.mask)
        if key in seen:
            continue
        seen.add(key)
        try:
            ds = dconf.open()
        except (ValueError, FileNotFoundError, TypeError) as e:
            problems.append(str(e))
            continue
        problems += data_problems(
            run_config.task_config, ds, run_config.architecture_config, scan=scan
        )
    return problems


def unwrap_worker_message(text: str) -> str:
    """The original error line of an exception re-raised from a worker process.

    torch's DataLoader re-raises a worker's exception as ``Caught ValueError in DataLoader
    worker process 0.\\nOriginal Traceback ...\\nValueError: <message>``; this returns
    ``<message>`` (other texts unchanged).
    """
    if "Original Traceback" not in text:
        return text
    lines = [line for line in text.strip().splitlines() if line.strip()]
    last = lines[-1].strip()
    head, sep, rest = last.partition(": ")
    if sep and head.replace(".", "").replace("_", "").isalnum() and head[:1].isupper():
        return rest
    return last
