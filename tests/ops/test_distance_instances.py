"""`dacapo.ops.distance_instances` (seeds, h-maxima, seed joining, flooding) against a
brute-force twin (per-voxel flood fills, Meyer's flooding with a heap), and its input checks."""

from __future__ import annotations

import heapq
import itertools

import numpy as np
import pytest
from scipy import ndimage

from dacapo.ops.distance_instances import distance_instances, h_maxima_voxels, join_seeds


def _neighbours(index, shape, full: bool):
    """Indices of the face (or full) neighbours of ``index`` inside ``shape``."""
    for step in itertools.product((-1, 0, 1), repeat=len(shape)):
        if not any(step) or (not full and sum(map(abs, step)) != 1):
            continue
        q = tuple(i + s for i, s in zip(index, step))
        if all(0 <= v < n for v, n in zip(q, shape)):
            yield q


def _components(mask: np.ndarray, full: bool) -> np.ndarray:
    structure = np.ones((3,) * mask.ndim) if full else None
    return ndimage.label(mask, structure=structure)[0]


def _h_maxima_brute(f: np.ndarray, h: float) -> np.ndarray:
    """v is a seed voxel iff no full-connectivity path from v, through voxels with f > g(v),
    reaches a voxel u with g(u) > g(v) (g = f - h in float64): flood fill per voxel."""
    f = f.astype(np.float64)
    g = f - h
    out = np.zeros(f.shape, bool)
    for v in np.ndindex(f.shape):
        seen, stack, ok = {v}, [v], True
        while stack and ok:
            p = stack.pop()
            for q in _neighbours(p, f.shape, full=True):
                if q in seen or not f[q] > g[v]:
                    continue
                if g[q] > g[v]:
                    ok = False
                    break
                seen.add(q)
                stack.append(q)
        out[v] = ok
    return out


def _join_brute(seeds: np.ndarray, voxel_size, r: float) -> np.ndarray:
    """Seed ids: components of {v : min over seed voxels u of |(v - u) * s| <= r / 2}."""
    if r > 0 and seeds.any():
        grid = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(seeds.shape, voxel_size)],
                                    indexing="ij"), -1)
        points = grid[seeds]
        dist = np.linalg.norm(grid[..., None, :] - points, axis=-1).min(-1)
        labels = _components(dist <= r / 2, full=True)
    else:
        labels = _components(seeds, full=True)
    return np.where(seeds, labels, 0)


def _flood_brute(f: np.ndarray, markers: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Meyer's flooding of -f from ``markers`` within ``mask`` (face neighbours): pop the
    queued voxel of highest f; each unlabelled masked neighbour takes its label."""
    labels = markers.copy()
    heap, age = [], itertools.count()
    for v in zip(*np.nonzero(markers)):
        heapq.heappush(heap, (-f[v], next(age), v))
    while heap:
        _, _, p = heapq.heappop(heap)
        for q in _neighbours(p, f.shape, full=False):
            if mask[q] and labels[q] == 0:
                labels[q] = labels[p]
                heapq.heappush(heap, (-f[q], next(age), q))
    return labels


def _first_occurrence(labels: np.ndarray) -> np.ndarray:
    out = np.zeros(labels.shape, np.uint64)
    mapping: dict[int, int] = {}
    for i, v in enumerate(labels.reshape(-1)):
        if v:
            mapping.setdefault(int(v), len(mapping) + 1)
            out.reshape(-1)[i] = mapping[int(v)]
    return out


def _instances_brute(f, voxel_size, threshold, seed_threshold, h, r) -> np.ndarray:
    mask = f > threshold
    seeds = f > seed_threshold
    if h is not None:
        seeds &= _h_maxima_brute(f, h)
    markers = _join_brute(seeds & mask, voxel_size, r)
    labels = _flood_brute(f, markers, mask)
    orphans = _components(mask & (labels == 0), full=False)
    labels = np.where(orphans > 0, orphans + labels.max(), labels)
    return _first_occurrence(labels)


@pytest.mark.parametrize("shape, voxel_size", [((9, 11), (2.0, 1.0)), ((5, 6, 7), (3.0, 1.0, 1.5))])
@pytest.mark.parametrize("h, r", [(None, 0.0), (0.15, 0.0), (0.0, 0.0), (None, 3.5), (0.3, 2.5)])
def test_kernel_equals_brute_force(shape, voxel_size, h, r):
    rng = np.random.default_rng(len(shape) * 10 + int(10 * (h or 0)) + int(r))
    # a smooth bumpy field with distinct values (no ties in the flooding order)
    f = ndimage.gaussian_filter(rng.uniform(-1, 1, shape), 1.0)
    f = (f - f.min()) / (f.max() - f.min()) * 1.6 - 0.4 + rng.uniform(0, 1e-6, shape)
    f = f.astype(np.float32)
    for threshold, seed_threshold in [(0.1, 0.6), (0.3, 0.5), (-0.5, 0.9)]:
        expected = _instances_brute(f, voxel_size, threshold, seed_threshold, h, r)
        got = distance_instances(f, voxel_size, threshold, seed_threshold, h, r)
        assert got.dtype == np.uint64
        np.testing.assert_array_equal(got, expected, err_msg=f"t={threshold} s={seed_threshold}")


def test_h_maxima_and_join_against_brute_force():
    rng = np.random.default_rng(3)
    f = ndimage.gaussian_filter(rng.uniform(0, 1, (8, 9, 7)), 0.8).astype(np.float32)
    for h in (0.0, 0.01, 0.05, 1.0):
        np.testing.assert_array_equal(h_maxima_voxels(f, h), _h_maxima_brute(f, h))
    # a plateau top is one seed voxel set; h = 0 gives the local maxima
    plateau = np.zeros((5, 5), np.float32)
    plateau[1:3, 1:4] = 1.0
    assert h_maxima_voxels(plateau, 0.0)[1:3, 1:4].all()
    seeds = rng.uniform(size=(7, 8, 9)) > 0.93
    for r in (0.0, 2.0, 4.5):
        np.testing.assert_array_equal(join_seeds(seeds, (2.0, 1.0, 1.0), r),
                                      _join_brute(seeds, (2.0, 1.0, 1.0), r))


def test_kernel_bad_input():
    with pytest.raises(ValueError, match="prediction: contains non-finite"):
        distance_instances(np.full((4, 4), np.nan), (1, 1), 0.1, 0.5)
    with pytest.raises(ValueError, match="voxel_size"):
        distance_instances(np.zeros((4, 4)), (1, 1, 1), 0.1, 0.5)
    with pytest.raises(ValueError, match="min_seed_distance"):
        distance_instances(np.zeros((4, 4)), (1, 1), 0.1, 0.5, min_seed_distance=-1)
