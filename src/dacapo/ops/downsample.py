"""Downsampling kernels for image pyramids (numpy in, numpy out).

Every kernel takes ``data`` with optional leading channel axes and ``factors`` (one
integer per spatial axis, the trailing axes); the spatial shape must be a multiple of
``factors`` (the caller crops). Output voxel ``j`` summarises the input block
``[j * f, (j + 1) * f)`` on every spatial axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["block_view", "downsample", "downsample_mean", "downsample_mode", "pyramid_factors"]


def block_view(data: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """``data`` reshaped to ``lead + out_shape + (prod(factors),)``: the last axis holds the
    voxels of each output voxel's block (C order within the block)."""
    factors = tuple(int(f) for f in factors)
    dims = len(factors)
    lead, spatial = data.shape[: data.ndim - dims], data.shape[data.ndim - dims :]
    if any(f < 1 for f in factors):
        raise ValueError(f"downsampling factors must be >= 1, got {factors}")
    if any(s % f for s, f in zip(spatial, factors)):
        raise ValueError(f"spatial shape {spatial} is not a multiple of the factors {factors}")
    out = tuple(s // f for s, f in zip(spatial, factors))
    split = lead + tuple(v for o, f in zip(out, factors) for v in (o, f))
    x = data.reshape(split)
    n = len(lead)
    order = tuple(range(n)) + tuple(n + 2 * i for i in range(dims)) + tuple(
        n + 2 * i + 1 for i in range(dims)
    )
    return x.transpose(order).reshape(lead + out + (int(np.prod(factors)),))


def downsample_mean(data: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """Block mean, ``out[j] = (1 / prod f) * sum of the block of j`` (computed in float64),
    in ``data``'s dtype: floats as they are, integers rounded to nearest (half to even)."""
    mean = block_view(data, factors).mean(axis=-1, dtype=np.float64)
    if np.issubdtype(data.dtype, np.integer):
        info = np.iinfo(data.dtype)
        return np.clip(np.rint(mean), info.min, info.max).astype(data.dtype)
    return mean.astype(data.dtype)


def downsample_mode(labels: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """Block mode for label images: the most frequent value of each block (0 counts like
    any label), ties to the smallest value. Vectorised over blocks: values are sorted within
    each block and each value's count is its number of equal entries (O(k^2) for k voxels
    per block, k = 4 or 8 for factor 2)."""
    blocks = np.sort(block_view(labels, factors), axis=-1)
    k = blocks.shape[-1]
    counts = np.zeros(blocks.shape, dtype=np.int32)
    for i in range(k):
        counts += blocks == blocks[..., i : i + 1]
    # argmax takes the first maximum: sorted ascending, that is the smallest tied value
    best = np.argmax(counts, axis=-1)[..., None]
    return np.take_along_axis(blocks, best, axis=-1)[..., 0]


def downsample(data: np.ndarray, factors: Sequence[int], method: str) -> np.ndarray:
    """``downsample_mean`` (``method="mean"``) or ``downsample_mode`` (``"mode"``), or every
    ``f``-th voxel starting at the first (``"stride"``)."""
    if method == "mean":
        return downsample_mean(data, factors)
    if method == "mode":
        return downsample_mode(data, factors)
    if method == "stride":
        block_view(data, factors)  # the same shape checks as the other methods
        lead = (slice(None),) * (data.ndim - len(factors))
        return np.ascontiguousarray(data[lead + tuple(slice(None, None, int(f)) for f in factors)])
    raise ValueError(f"downsampling method must be 'mean', 'mode' or 'stride', got {method!r}")


def pyramid_factors(voxel_size: Sequence[int]) -> tuple[int, ...]:
    """Factors of the next pyramid level: 2 on the finest axes (smallest voxel size), 1 on
    coarser ones — so an anisotropic z (e.g. 40 nm vs 8 nm) is not downsampled while it is
    coarser than y/x, and the levels approach isotropy: (40, 8, 8) -> (40, 16, 16) ->
    (40, 32, 32) -> (40, 64, 64) -> (80, 64, 64) -> (80, 128, 128)."""
    finest = min(voxel_size)
    return tuple(2 if v == finest else 1 for v in voxel_size)
