"""Checks of arrays: metadata (shape, dtype, voxel size, channels, mask) and values.

Every check raises `dacapo.errors.InputError` (a `ValueError`) whose message starts with
the name of the array or field it is about, followed by the problem, on one line.

*Metadata* checks cost nothing; *value* checks (`scan_array`, `check_finite_array`) read an
array once, chunk by chunk, with memory bounded by ``budget_bytes`` (default 64 MiB), so
they work on volumes bigger than memory. Which checks apply to a dataset for a task is
decided in `dacapo.runs.verify`.

The mask rule (stated here, once): a mask has the voxel size and the ROI of its ground
truth (`check_mask`), non-zero = labelled. Training, weighting and validation use the GT
voxels where the mask is non-zero.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from funlib.geometry import Coordinate, Roi

from dacapo.errors import InputError

DEFAULT_BUDGET = 64 * 2**20


# --------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------


def first_index(bad: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape))


def label_text(value: float) -> str:
    """A label value as written: integers exactly (no 3e+06), other floats with %g."""
    if isinstance(value, int | np.integer) or float(value).is_integer():
        return str(int(value))
    return f"{value:g}"


def non_finite_message(name: str, nan: int, inf: int, first: tuple[int, ...] | None) -> str:
    return (f"{name}: {nan + inf} non-finite value(s) ({nan} NaN, {inf} Inf), "
            f"first at voxel {first}")


def negative_message(name: str, value: float, first: tuple[int, ...] | None) -> str:
    return (f"{name}: negative label {label_text(value)} (labels must be >= 0; 0 is "
            "background), "
            f"first at voxel {first}")


def too_large_message(name: str, value: float, num_classes: int, detail: str = "") -> str:
    return (f"{name}: label {label_text(value)} >= number of classes {num_classes} "
            f"(labels must lie in 0..{num_classes - 1}{detail})")


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


def check_voxel_size(voxel_size: Sequence[float], name: str) -> None:
    """Raise unless every entry of ``voxel_size`` (world units per voxel) is a positive
    integer."""
    values = tuple(voxel_size)
    if not values or not all(float(v).is_integer() and v > 0 for v in values):
        raise InputError(f"{name}: voxel sizes must be positive integers, got "
                         f"{','.join(f'{v:g}' for v in values)}")


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


def spatial_and_channels(shape: Sequence[int], dims: int) -> tuple[tuple[int, ...], int | None]:
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
        _, c = spatial_and_channels(shape, dims)
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
            f"{name}: voxel size mismatch: mask {tuple(mask.voxel_size)} vs {gt_name} "
            f"{tuple(gt.voxel_size)} (a mask must have the voxel size of the ground truth)"
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
                    idx = first_index(~finite)
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
                idx = first_index(block < 0)
                s.first_negative = tuple(c + i for c, i in zip(corner, idx))
    return s


def check_finite_array(array, name: str, budget_bytes: int = DEFAULT_BUDGET) -> None:
    """Raise if a (float) array holds NaN/Inf anywhere; reads it chunk by chunk."""
    dtype = np.dtype(getattr(array, "dtype", np.float32))
    if dtype.kind not in "fc":
        return
    s = scan_array(array, budget_bytes)
    if s.nan or s.inf:
        raise InputError(non_finite_message(name, s.nan, s.inf, s.first_non_finite))


