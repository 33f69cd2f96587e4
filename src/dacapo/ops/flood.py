"""Seeded watershed by priority flooding on quantised heights (a bucket queue).

Meyer's flooding (F. Meyer, "Topographic distance and watershed lines", Signal Processing
38, 1994; the algorithm of ``skimage.segmentation.watershed``), face connectivity, with the
heights first quantised to integer levels ``q(v) = floor(height(v) / step)``:

1. Every seed voxel (``markers != 0``; in ``mask`` where one is given) enters the queue at
   level ``q(v)``, in C order.
2. Repeatedly take the oldest entry ``u`` of the lowest non-empty level ``l``; every face
   neighbour ``w`` inside the array and the mask that has no label yet gets ``u``'s label
   and enters the queue at level ``max(q(w), l)``.

So each voxel gets the label of a seed it reaches by a path whose highest level is the
smallest possible (minimax), ties resolved first-in first-out; voxels no seed reaches (cut
off by the mask) stay 0. Entries never enter below the level being taken, so the queue is
one FIFO per level (O(1) per voxel instead of a binary heap's O(log n)). On heights that
are already integer multiples of ``step`` (e.g. uint8 predictions scaled to [0, 1] and
averaged, with ``step`` ≤ their spacing) the order of the levels is the order of the
heights, as in a float heap; on other floats values closer than ``step`` count as equal.
The levels depend on the height alone (a fixed ``step``, no per-array range), so blocks of
a volume quantise alike.
"""

from __future__ import annotations

import numba
import numpy as np

from .watershed import renumbered

__all__ = ["DEFAULT_STEP", "flood", "quantise"]

DEFAULT_STEP = 2.0 ** -12
"""Level spacing of heights in [0, 1] or [-1, 1]: finer than uint8's 1/255 and than the
mean of three uint8 channels (1/765), so such predictions keep their exact order."""

_MAX_LEVELS = 1 << 24


def quantise(height: np.ndarray, step: float = DEFAULT_STEP) -> np.ndarray:
    """Levels ``floor(height / step) - min`` (int32, 0 = the lowest); ValueError when a
    height is not finite or the range needs more than 2**24 levels (raise ``step``)."""
    if not step > 0:
        raise ValueError(f"step: must be > 0, got {step}")
    height = np.asarray(height)
    if height.size == 0:
        return np.zeros(height.shape, np.int32)
    scaled = np.floor(np.multiply(height, 1.0 / step, dtype=np.float64))
    if not np.all(np.isfinite(scaled)):
        raise ValueError("height: contains non-finite values")
    low = scaled.min()
    if scaled.max() - low >= _MAX_LEVELS:
        raise ValueError(f"height: range {float(height.max()) - float(height.min()):g} needs "
                         f"more than {_MAX_LEVELS} levels of step {step:g}")
    return (scaled - low).astype(np.int32)


@numba.njit(cache=True, nogil=True, inline="always")
def _push(head, tail, nxt, level, i):  # pragma: no cover - compiled
    """Append voxel ``i`` to the FIFO of ``level``."""
    nxt[i] = -1
    if tail[level] < 0:
        head[level] = i
    else:
        nxt[tail[level]] = i
    tail[level] = i


@numba.njit(cache=True, nogil=True)
def _flood(levels, labels, nxt, offsets, n_levels):  # pragma: no cover - compiled
    """Flood on padded flat arrays: ``labels`` is -1 on the border and outside the mask,
    > 0 at seeds (dense ids), so ``u + offsets[k]`` needs no bounds check; ``nxt`` (scratch,
    one per voxel) links each level's FIFO."""
    n = levels.size
    head = np.full(n_levels, -1, np.int64)
    tail = np.full(n_levels, -1, np.int64)
    for i in range(n):
        if labels[i] > 0:
            # a seed whose neighbours are all labelled or closed would push nothing when
            # taken: leaving it out changes no label and no other entry's order
            frontier = False
            for k in range(offsets.size):
                if labels[i + offsets[k]] == 0:
                    frontier = True
                    break
            if frontier:
                _push(head, tail, nxt, levels[i], i)
    current = 0
    while current < n_levels:
        u = head[current]
        if u < 0:
            current += 1
            continue
        head[current] = nxt[u]
        if head[current] < 0:
            tail[current] = -1
        label = labels[u]
        for k in range(offsets.size):
            w = u + offsets[k]
            if labels[w] != 0:
                continue
            labels[w] = label
            _push(head, tail, nxt, max(levels[w], current), w)


def flood(
    height: np.ndarray,
    markers: np.ndarray,
    mask: np.ndarray | None = None,
    step: float = DEFAULT_STEP,
) -> np.ndarray:
    """Seeded watershed labels (uint64) of ``height`` from ``markers`` (non-zero = seed id)
    inside ``mask`` (all voxels when None): module docstring. Voxels outside the mask are 0
    (seeds there included)."""
    height = np.asarray(height)
    markers = np.asarray(markers)
    if markers.shape != height.shape:
        raise ValueError(f"markers: shape {markers.shape} differs from the height's {height.shape}")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != height.shape:
            raise ValueError(f"mask: shape {mask.shape} differs from the height's {height.shape}")
    levels = quantise(height, step)
    if height.size == 0:
        return np.zeros(height.shape, np.uint64)
    n_levels = int(levels.max()) + 1
    levels = np.pad(levels.astype(np.uint16 if n_levels <= 1 << 16 else np.int32), 1)
    # dense seed ids 1..k (position ids are up to 64 bits); -1 = closed (border, outside mask)
    dense, ids = renumbered(markers)
    labels = np.full(tuple(n + 2 for n in height.shape), -1, np.int32)
    inner = labels[(slice(1, -1),) * height.ndim]
    inner[...] = dense
    if mask is not None:
        inner[~mask] = -1
    strides = [int(np.prod(labels.shape[d + 1:])) for d in range(height.ndim)]
    # neighbour order of skimage: -e_0, ..., -e_last, then +e_last, ..., +e_0
    offsets = np.array([-s for s in strides] + [s for s in reversed(strides)], np.int64)
    nxt = np.empty(labels.size, np.int32 if labels.size < 2**31 else np.int64)
    _flood(levels.reshape(-1), labels.reshape(-1), nxt, offsets, n_levels)
    np.maximum(inner, 0, out=inner)
    return ids[inner]
