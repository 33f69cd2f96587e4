"""The label round trip through a coarser grid (`dacapo.ops.round_trip`) against a
brute-force twin (block means and linear interpolation written out voxel by voxel) and
hand-computed cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dacapo.ops.round_trip import label_boundaries, round_trip, round_trip_iou


def _brute_round_trip(labels: np.ndarray, factors) -> np.ndarray:
    """Every label's block mean, then at each fine voxel the linear interpolation of the
    coarse voxel centres (coarse j at fine f·j + (f − 1)/2, clamped at the borders), the
    label of the largest value (ties: the smallest label)."""
    crop = labels[tuple(slice(0, s - s % f) for s, f in zip(labels.shape, factors))]
    coarse_shape = [s // f for s, f in zip(crop.shape, factors)]
    values = sorted(np.unique(crop).tolist())
    coarse = {v: np.zeros(coarse_shape) for v in values}
    for idx in itertools.product(*(range(n) for n in coarse_shape)):
        block = crop[tuple(slice(i * f, (i + 1) * f) for i, f in zip(idx, factors))]
        for v in values:
            coarse[v][idx] = np.mean(block == v)
    out = np.zeros(crop.shape, crop.dtype)
    for fine in itertools.product(*(range(n) for n in crop.shape)):
        corners = []  # per axis: [(coarse index, weight), ...]
        for j, f, n in zip(fine, factors, coarse_shape):
            c = min(max((j + 0.5) / f - 0.5, 0.0), n - 1.0)
            i0 = int(np.floor(c))
            i1 = min(i0 + 1, n - 1)
            corners.append([(i0, 1 - (c - i0)), (i1, c - i0)])
        best, label = -1.0, None
        for v in values:
            value = sum(np.prod([w for _, w in combo]) * coarse[v][tuple(i for i, _ in combo)]
                        for combo in itertools.product(*corners))
            if value > best:
                best, label = value, v
        out[fine] = label
    return out


@pytest.mark.parametrize("shape,factors", [((13, 18), (2, 2)), ((2, 9, 17), (1, 4, 2)),
                                           ((6, 8, 8), (2, 2, 2))])
def test_round_trip_equals_the_brute_force_twin(shape, factors):
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 3, size=shape).astype(np.uint8)
    for _ in range(2):  # blobs, not salt and pepper: runs of one label
        labels = np.maximum(labels, np.roll(labels, 1, axis=-1))
    crop, trip = round_trip(labels, factors)
    np.testing.assert_array_equal(trip, _brute_round_trip(labels, factors))
    ious = round_trip_iou(labels, factors)
    for v, iou in ious.items():
        a, b = crop == v, trip == v
        assert iou == pytest.approx((a & b).sum() / (a | b).sum())


def test_hand_computed_stripes():
    # stripes 4 voxels wide on the 2x grid come back whole: every fine voxel is nearer the
    # coarse voxel of its own stripe (weights 3/4 and 1/4)
    stripes = np.repeat(np.arange(4) % 2, 4)[None].repeat(6, axis=0)
    assert round_trip_iou(stripes, (2, 2)) == {0: 1.0, 1: 1.0}
    # a line one voxel wide is half of its coarse column: a tie, lost to the background
    line = np.zeros((4, 8), np.uint8)
    line[:, 2] = 1
    assert round_trip_iou(line, (2, 2)) == {0: 28 / 32, 1: 0.0}


def test_label_boundaries_by_hand():
    labels = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [0, 0, 0, 2]])
    np.testing.assert_array_equal(label_boundaries(labels), [[0, 1, 1, 0],
                                                             [1, 1, 1, 0],
                                                             [1, 1, 1, 1]])
