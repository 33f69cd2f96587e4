"""Mutex watershed post-processing: bias sweep, blockwise stitching, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array, open_ds, prepare_ds
from scipy import ndimage

from dacapo.experiments.tasks.post_processors import (
    WatershedPostProcessor,
    WatershedPostProcessorParameters,
)
from dacapo.ops.instance_metrics import contingency_table, variation_of_information
from dacapo.ops.watershed import majority_pairs, merge_components, mutex_watershed, segment

OFFSETS = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (2, 0, 0), (0, 3, 0), (0, 0, 3)]
VOXEL = Coordinate(8, 4, 4)


def make_labels(shape=(32, 32, 32), num=12, seed=0) -> np.ndarray:
    """Voronoi cells of random seeds, cut to balls (convex, so connected), with gaps."""
    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, np.uint64)
    points = np.stack([rng.integers(0, s, num) for s in shape], axis=1)
    seeds[tuple(points.T)] = np.arange(1, num + 1)
    dist, idx = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    labels = seeds[tuple(idx)]
    labels[dist > 9] = 0
    boundary = np.zeros(shape, bool)
    for axis in range(3):
        diff = np.diff(labels.astype(np.int64), axis=axis) != 0
        lo = [slice(None)] * 3
        lo[axis] = slice(0, -1)
        boundary[tuple(lo)] |= diff
    labels[boundary] = 0  # one-voxel gaps between touching cells
    return labels


def brute_affinities(labels: np.ndarray, offsets) -> np.ndarray:
    """aff[k, u] = 1 iff u + o_k is inside, label(u) == label(u + o_k) != 0 (loop per voxel)."""
    affs = np.zeros((len(offsets), *labels.shape), np.float32)
    for k, o in enumerate(offsets):
        for u in np.ndindex(labels.shape):
            v = tuple(a + b for a, b in zip(u, o))
            if all(0 <= c < s for c, s in zip(v, labels.shape)):
                affs[k][u] = float(labels[u] != 0 and labels[u] == labels[v])
    return affs


def full_voi(a: np.ndarray, b: np.ndarray) -> float:
    """VOI (bits) between two labelings, label 0 counted as a label like any other."""
    split, merge = variation_of_information(
        contingency_table(a.astype(np.uint64) + 1, b.astype(np.uint64) + 1)
    )
    return split + merge


@pytest.fixture(scope="module")
def volume():
    labels = make_labels()
    affs = brute_affinities(labels, OFFSETS)
    rng = np.random.default_rng(1)
    noisy = np.clip(0.15 + 0.7 * affs + rng.normal(0, 0.15, affs.shape), 0, 1).astype(np.float32)
    return labels, affs, noisy


def _write_prediction(path, data) -> str:
    array = prepare_ds(str(path), shape=data.shape, offset=(80, 40, 40), voxel_size=VOXEL,
                       axis_names=["c^", "z", "y", "x"], dtype=data.dtype, mode="w")
    array[array.roi] = data
    return str(path)


def test_mutex_watershed_conventions():
    # 1D chain along x: positive weights merge, negative split, singletons are 0
    affs = np.array([[[0.9, 0.9, 0.3, 0.45, 0.9]]])  # edges 0-1, 1-2, 2-3, 3-4, 4-out
    labels = mutex_watershed(affs, [(0, 1)], bias=0.5)[0]
    assert labels[0] == labels[1] == labels[2] != 0
    assert labels[3] == 0 and labels[4] == 0


def test_bias_sweep_recovers_labels(volume):
    labels, affs, _ = volume
    post = WatershedPostProcessor(offsets=OFFSETS)
    vois = []
    for p in post.enumerate_parameters():
        seg = segment(affs, OFFSETS, p.bias, p.min_size)
        vois.append(full_voi(seg, labels))
    assert min(vois) < 1e-9  # the partition, background included, is recovered exactly


def test_in_memory_array(volume, tmp_path):
    labels, affs, _ = volume
    lsd = np.zeros((10, *labels.shape), np.float32)  # trailing LSD channels are ignored
    array = Array(np.concatenate([affs, lsd]), offset=(80, 40, 40), voxel_size=VOXEL,
                  axis_names=["c^", "z", "y", "x"])
    post = WatershedPostProcessor(offsets=OFFSETS)
    post.set_prediction(array)
    out = post.process(WatershedPostProcessorParameters(0, bias=0.5), tmp_path / "o.zarr/seg")
    seg = out.to_ndarray(out.roi)
    assert seg.dtype == np.uint64 and seg.shape == labels.shape
    assert out.roi == Roi((80, 40, 40), Coordinate(labels.shape) * VOXEL)
    assert full_voi(seg, labels) < 1e-9


@pytest.mark.parametrize("which", ["perfect", "noisy"])
def test_blockwise_matches_single_block(volume, tmp_path, which):
    labels, perfect, noisy = volume
    affs = perfect if which == "perfect" else noisy
    bias = 0.5
    single = segment(affs, OFFSETS, bias)
    post = WatershedPostProcessor(offsets=OFFSETS)
    post.set_prediction(_write_prediction(tmp_path / "p.zarr/affs", affs))
    params = WatershedPostProcessorParameters(0, bias=bias)
    block = Coordinate(16, 16, 16) * VOXEL  # 2 x 2 x 2 blocks
    out1 = post.process(params, tmp_path / "o.zarr/a", num_workers=1, block_size=block)
    seg1 = out1.to_ndarray(out1.roi)
    out2 = post.process(params, tmp_path / "o.zarr/b", num_workers=2, block_size=block)
    seg2 = out2.to_ndarray(out2.roi)
    out3 = post.process(params, tmp_path / "o.zarr/a", num_workers=1, block_size=block)
    np.testing.assert_array_equal(seg1, seg2)  # 1 vs 2 workers
    np.testing.assert_array_equal(seg1, out3.to_ndarray(out3.roi))  # re-run, same path
    voi = full_voi(seg1, single)
    assert voi <= (1e-9 if which == "perfect" else 0.01), voi
    if which == "perfect":
        assert full_voi(seg1, labels) < 1e-9
    assert not list(tmp_path.glob("watershed_*"))  # scratch removed


def test_min_size_filter(volume):
    labels, affs, _ = volume
    sizes = np.bincount(labels.ravel().astype(np.int64))
    cut = int(np.median(sizes[1:][sizes[1:] > 0]))
    seg = segment(affs, OFFSETS, 0.5, min_size=cut)
    kept = np.unique(labels[seg != 0])
    assert set(kept) == {i for i in range(1, len(sizes)) if sizes[i] >= cut}


def test_majority_pairs_and_components():
    auth = np.array([1, 1, 1, 2, 2, 0, 0, 3])
    ctx = np.array([7, 7, 8, 8, 8, 9, 9, 9])
    pairs = majority_pairs(auth, ctx)
    # 7 -> 1 (2/2); 8 -> 2 (2/3); 9: 0 holds 2/3, so no partner
    assert sorted(map(tuple, pairs.tolist())) == [(7, 1), (8, 2)]
    ids, roots = merge_components(np.array([[5, 3], [3, 9], [10, 11]], np.uint64))
    assert dict(zip(ids.tolist(), roots.tolist())) == {3: 3, 5: 3, 9: 3, 10: 10, 11: 10}
