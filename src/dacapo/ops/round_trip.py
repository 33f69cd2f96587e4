"""How much of a label image survives a coarser grid: the planner's test of the scale a
network may work at (`dacapo.planning.scale_rules`).

- `round_trip_iou`: each label's mask is averaged over blocks of ``factors`` voxels (its
  area fraction per coarse voxel), interpolated back linearly (voxel centres: coarse voxel
  ``j`` sits at fine ``f·j + (f − 1)/2``), and every fine voxel takes the label of the
  largest interpolated fraction; the IoU of each label with itself before the trip. This is
  what a network working on the coarse grid, its output interpolated linearly, can at best
  reach (the upper bound of its IoU per label);
- `label_boundaries`: the voxels whose face neighbour has another label (both sides), the
  structure an instance segmentation must resolve where objects touch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from dacapo.ops.downsample import downsample_mean

__all__ = ["label_boundaries", "round_trip", "round_trip_iou"]


def round_trip(labels: np.ndarray, factors: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(``labels`` cropped to whole blocks of ``factors``, the labels after the round trip);
    a tie goes to the smallest label value."""
    factors = tuple(int(f) for f in factors)
    if len(factors) != labels.ndim:
        raise ValueError(f"factors {factors} do not match the labels' {labels.ndim} axes")
    crop = labels[tuple(slice(0, s - s % f) for s, f in zip(labels.shape, factors))]
    if crop.size == 0:
        raise ValueError(f"labels of shape {labels.shape} are smaller than one block {factors}")
    values = np.unique(crop)
    best = np.full(crop.shape, -1.0, np.float32)
    trip = np.zeros(crop.shape, crop.dtype)
    for v in values:
        coarse = downsample_mean((crop == v).astype(np.float32), factors)
        fine = ndimage.zoom(coarse, factors, order=1, grid_mode=True, mode="nearest")
        better = fine > best
        best[better] = fine[better]
        trip[better] = v
    return crop, trip


def round_trip_iou(labels: np.ndarray, factors: Sequence[int]) -> dict[int, float]:
    """IoU per label value of ``labels`` with its `round_trip` through a grid coarser by
    ``factors`` (one per axis; the trailing voxels that do not fill a block are left out)."""
    crop, trip = round_trip(labels, factors)
    values = np.unique(crop)
    out = {}
    for v in values:
        a, b = crop == v, trip == v
        out[int(v)] = float(np.count_nonzero(a & b) / np.count_nonzero(a | b))
    return out


def label_boundaries(labels: np.ndarray) -> np.ndarray:
    """uint8 mask of the voxels with a face neighbour of another label (both sides)."""
    out = np.zeros(labels.shape, bool)
    for axis in range(labels.ndim):
        step = np.diff(labels, axis=axis) != 0
        lo = [slice(None)] * labels.ndim
        hi = [slice(None)] * labels.ndim
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        out[tuple(lo)] |= step
        out[tuple(hi)] |= step
    return out.astype(np.uint8)
