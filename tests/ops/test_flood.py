"""The bucket-queue flood against a heap twin (the same definition, heapq) and against
``skimage.segmentation.watershed`` where no two heights tie."""

from __future__ import annotations

import heapq
import itertools

import numpy as np
import pytest
from skimage.segmentation import watershed

from dacapo.ops.flood import flood, quantise


def _heap_flood(levels: np.ndarray, markers: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Brute-force twin: a binary heap of (level, age, index); seeds enter in C order,
    neighbours in skimage's order (-e_0 … -e_last, +e_last … +e_0) at max(level, popped)."""
    shape = levels.shape
    labels = markers.astype(np.uint64).copy()
    if mask is None:
        mask = np.ones(shape, bool)
    labels[~mask] = 0
    age = itertools.count()
    heap = []
    for index in zip(*np.nonzero(labels)):
        heapq.heappush(heap, (int(levels[index]), next(age), index))
    ndim = len(shape)
    steps = [tuple(-1 if j == d else 0 for j in range(ndim)) for d in range(ndim)]
    steps += [tuple(1 if j == d else 0 for j in range(ndim)) for d in reversed(range(ndim))]
    while heap:
        level, _, u = heapq.heappop(heap)
        for step in steps:
            w = tuple(a + b for a, b in zip(u, step))
            if not all(0 <= c < s for c, s in zip(w, shape)):
                continue
            if labels[w] or not mask[w]:
                continue
            labels[w] = labels[u]
            heapq.heappush(heap, (max(int(levels[w]), level), next(age), w))
    return labels


@pytest.mark.parametrize("shape", [(7, 9, 11), (23, 17), (40,)])
@pytest.mark.parametrize("use_mask", [False, True])
def test_equals_the_heap_twin_with_many_ties(shape, use_mask):
    rng = np.random.default_rng(len(shape) + 10 * use_mask)
    height = rng.integers(0, 4, shape).astype(np.float32)
    markers = np.zeros(shape, np.int64)
    where = rng.choice(height.size, 6, replace=False)
    markers.reshape(-1)[where] = [3, 1, 2, 2, 5, 4]
    mask = rng.random(shape) > 0.25 if use_mask else None
    expected = _heap_flood(quantise(height, 1.0), markers, mask)
    np.testing.assert_array_equal(flood(height, markers, mask, step=1.0), expected)


@pytest.mark.parametrize("use_mask", [False, True])
def test_equals_skimage_without_ties(use_mask):
    rng = np.random.default_rng(3)
    shape = (12, 20, 25)
    height = rng.permutation(int(np.prod(shape))).reshape(shape).astype(np.float64)
    markers = np.zeros(shape, np.int64)
    markers.reshape(-1)[rng.choice(height.size, 25, replace=False)] = np.arange(1, 26)
    mask = rng.random(shape) > 0.3 if use_mask else None
    np.testing.assert_array_equal(flood(height, markers, mask, step=1.0),
                                  watershed(height, markers=markers, mask=mask))


def test_uint8_predictions_keep_their_order():
    """Means of three uint8 channels scaled to [0, 1] (spacing 1/765) map to distinct
    levels in the same order at the default step."""
    sums = np.arange(766)
    height = 1.0 - (sums / 3.0 / 255.0).astype(np.float32)
    levels = quantise(height)
    assert len(np.unique(levels)) == 766
    assert np.all(np.diff(levels) < 0)


def test_a_hand_computed_ridge():
    """Two basins split by a ridge at x = 3: each seed floods its side; the ridge voxel
    goes to the seed that reaches it first (left: its path is at level 5 sooner)."""
    height = np.array([0, 1, 2, 5, 2, 1, 0], np.float32)
    markers = np.array([1, 0, 0, 0, 0, 0, 2])
    np.testing.assert_array_equal(flood(height, markers, step=1.0), [1, 1, 1, 1, 2, 2, 2])
    mask = np.array([1, 1, 1, 0, 1, 1, 1], bool)
    np.testing.assert_array_equal(flood(height, markers, mask, step=1.0), [1, 1, 1, 0, 2, 2, 2])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="markers"):
        flood(np.zeros((3, 3)), np.zeros((3, 4), int))
    with pytest.raises(ValueError, match="non-finite"):
        flood(np.array([0.0, np.nan]), np.array([1, 0]))
