"""Boundary distances (dacapo.ops.distances) against brute force over every face midpoint."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from dacapo.ops.distances import (
    boundary_distance,
    crop_edge_distance,
    inner_distance,
    knowable_mask,
    mask_edge_distance,
    mask_edge_distance_below,
    no_boundary_distance,
    signed_distance,
    tanh_normalize,
)
from tests.references import (
    brute_boundary_distance,
    brute_inner_distance,
    brute_signed_distance,
    random_labels,
)

CASES = [
    ((9, 13), (4.0, 2.0)),
    ((12, 7), (1.0, 1.0)),
    ((6, 9, 8), (8.0, 4.0, 4.0)),
    ((7, 5, 10), (3.0, 5.0, 2.0)),
    ((5, 6, 4), (50.0, 4.0, 4.0)),
]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("shape,voxel_size", CASES)
def test_boundary_distance_vs_brute_force(seed, shape, voxel_size):
    rng = np.random.default_rng(seed)
    for values in (rng.integers(0, 3, shape), random_labels(rng, shape, 4)):
        np.testing.assert_allclose(
            boundary_distance(values, voxel_size),
            brute_boundary_distance(values, voxel_size),
            rtol=0,
            atol=1e-5,
        )


@pytest.mark.parametrize("seed", range(4))
def test_sparse_objects_long_distances(seed):
    """A few isolated voxels: distances span the whole crop (long parabola envelopes)."""
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(6, 14, 3))
    voxel_size = tuple(rng.uniform(0.5, 9.0, 3))
    values = np.zeros(shape, np.int32)
    for _ in range(rng.integers(1, 4)):
        values[tuple(rng.integers(0, n) for n in shape)] = rng.integers(1, 3)
    np.testing.assert_allclose(
        boundary_distance(values, voxel_size),
        brute_boundary_distance(values, voxel_size),
        rtol=0,
        atol=1e-5,
    )


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.int16, np.uint32, np.uint64, np.float32])
def test_value_dtypes(dtype):
    rng = np.random.default_rng(5)
    values = rng.integers(0, 2, (6, 7, 5)).astype(dtype)
    if dtype == np.uint64:
        values = values * np.uint64(2**63 + 5)  # ids above int64 range stay distinct
    ref = brute_boundary_distance(values, (8, 4, 4))
    np.testing.assert_allclose(boundary_distance(values, (8, 4, 4)), ref, atol=1e-5)


def test_signed_distance_by_hand_1d_and_anisotropic():
    # 1D, s = 4: boundary face at 1.5 voxels -> centres 0..4 are 6, 2 | 2, 6, 10 away
    np.testing.assert_allclose(
        signed_distance(np.array([0, 0, 1, 1, 1]), (4,)), [-6, -2, 2, 6, 10]
    )
    # 3D 8x4x4: a voxel touching the boundary along z has |d| = 4, along x |d| = 2
    mask = np.zeros((4, 6, 6), bool)
    mask[2:, :, :] = True
    d = signed_distance(mask, (8, 4, 4))
    np.testing.assert_allclose(d[:, 0, 0], [-12, -4, 4, 12])
    mask = np.zeros((4, 6, 6), bool)
    mask[:, :, 3:] = True
    d = signed_distance(mask, (8, 4, 4))
    np.testing.assert_allclose(d[0, 0], [-10, -6, -2, 2, 6, 10])


@pytest.mark.parametrize("shape,voxel_size", CASES)
def test_signed_distance_vs_brute_force(shape, voxel_size):
    rng = np.random.default_rng(11)
    mask = random_labels(rng, shape, 1).astype(bool)
    got = signed_distance(mask, voxel_size)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, brute_signed_distance(mask, voxel_size), atol=1e-5, rtol=1e-6)


def test_signed_distance_matches_old_dacapo_2x_grid_scipy():
    """The exact face-midpoint distance equals scipy's EDT on the doubled grid (boundary
    marks at odd positions, sampling s/2, read at even positions) as old DaCapo computed it."""
    rng = np.random.default_rng(3)
    mask = random_labels(rng, (10, 12, 9), 1).astype(bool)
    voxel_size = (8.0, 4.0, 4.0)
    grid = np.ones(tuple(2 * n - 1 for n in mask.shape), bool)
    for k in range(3):
        hi = tuple(slice(1, None) if a == k else slice(None) for a in range(3))
        lo = tuple(slice(None, -1) if a == k else slice(None) for a in range(3))
        target = tuple(slice(1, None, 2) if a == k else slice(None, None, 2) for a in range(3))
        grid[target] &= ~(mask[hi] != mask[lo])
    ref = distance_transform_edt(grid, sampling=[s / 2 for s in voxel_size])[::2, ::2, ::2]
    np.testing.assert_allclose(np.abs(signed_distance(mask, voxel_size)), ref, atol=1e-4)


def test_no_boundary_gives_half_smallest_extent():
    shape, voxel_size = (5, 6, 7), (8, 4, 4)
    assert no_boundary_distance(shape, voxel_size) == 0.5 * min(40, 24, 28)
    np.testing.assert_array_equal(signed_distance(np.ones(shape), voxel_size), 12.0)
    np.testing.assert_array_equal(signed_distance(np.zeros(shape), voxel_size), -12.0)
    assert np.all(np.isinf(boundary_distance(np.full(shape, 3), voxel_size)))


@pytest.mark.parametrize("shape,voxel_size", CASES)
def test_inner_distance_vs_brute_force(shape, voxel_size):
    rng = np.random.default_rng(7)
    labels = random_labels(rng, shape, 5).astype(np.uint64)
    got = inner_distance(labels, voxel_size)
    np.testing.assert_allclose(got, brute_inner_distance(labels, voxel_size), atol=1e-5)
    assert np.all(got[labels == 0] == 0) and np.all(got[labels != 0] > 0)


def test_inner_distance_separates_touching_instances():
    """Two boxes touching along x (no background between them): the voxels on their common
    face are s_x / 2 from the boundary, so a threshold splits them."""
    labels = np.zeros((3, 4, 8), np.uint32)
    labels[:, :, 0:4] = 7
    labels[:, :, 4:8] = 9
    d = inner_distance(labels, (8, 4, 2))
    np.testing.assert_allclose(d[1, 1], [7, 5, 3, 1, 1, 3, 5, 7])
    # with one label the crop edge is no boundary: half the smallest extent everywhere
    same = np.where(labels > 0, 7, 0)
    np.testing.assert_allclose(inner_distance(same, (8, 4, 2)), 0.5 * min(24, 16, 16))


def test_crop_edge_distance_is_mask_edge_of_full_mask():
    shape, voxel_size = (5, 7, 4), (8.0, 4.0, 3.0)
    padded = np.pad(np.ones(shape, bool), 1)
    ref = brute_boundary_distance(padded, voxel_size)[1:-1, 1:-1, 1:-1]
    np.testing.assert_allclose(crop_edge_distance(shape, voxel_size), ref, atol=1e-6)
    np.testing.assert_allclose(mask_edge_distance(None, voxel_size, shape), ref, atol=1e-6)
    assert crop_edge_distance(shape, voxel_size)[0, 3, 2] == 4.0  # s_z / 2 on the z edge


@pytest.mark.parametrize("seed", range(3))
def test_mask_edge_distance_vs_brute_force(seed):
    rng = np.random.default_rng(seed)
    mask = random_labels(rng, (8, 9, 7), 3) > 0
    voxel_size = (8.0, 4.0, 4.0)
    padded = np.pad(mask, 1)
    ref = brute_boundary_distance(padded, voxel_size)[1:-1, 1:-1, 1:-1]
    ref[~mask] = 0
    np.testing.assert_allclose(mask_edge_distance(mask, voxel_size), ref, atol=1e-5)


def test_knowable_mask_by_hand():
    scale = 10.0
    edge = np.array([0.0, 2.0, 5.0, 5.0, 30.0, 30.0])
    target = np.tanh(np.array([1.0, 2.0, 4.0, 6.0, 100.0, -100.0]) / scale)
    # masked out; claim == reach; claim < reach; claim > reach; saturated claims capped
    # at 0.8 and reach tanh(3) > 0.8
    np.testing.assert_array_equal(
        knowable_mask(target, edge, scale), [False, True, True, False, True, True]
    )
    # saturated claim but the edge is too close: tanh(0.5) < 0.8
    assert not knowable_mask(np.array([0.99]), np.array([5.0]), scale)[0]


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="voxel_size"):
        boundary_distance(np.zeros((3, 4)), (1, 1, 1))
    with pytest.raises(ValueError, match="voxel_size"):
        boundary_distance(np.zeros((3, 4)), (1, 0))
    with pytest.raises(ValueError, match="scale_factor"):
        tanh_normalize(np.zeros(3), 0)


def test_deterministic():
    rng = np.random.default_rng(0)
    labels = random_labels(rng, (20, 21, 22), 6)
    a = inner_distance(labels, (8, 4, 4))
    b = inner_distance(labels.copy(), (8, 4, 4))
    np.testing.assert_array_equal(a, b)


# --- `mask_edge_distance_below` (the bounded mask-edge distance behind ``mask_distances``)


@pytest.mark.parametrize("seed", range(4))
def test_equal_below_limit(seed):
    rng = np.random.default_rng(seed)
    for trial in range(60):
        dims = int(rng.integers(1, 4))
        shape = tuple(int(n) for n in rng.integers(2, 12, dims))
        voxel_size = tuple(float(v) for v in rng.integers(1, 6, dims))
        mask = np.ones(shape, bool)
        kind = trial % 3
        if kind == 0:  # scattered unlabelled voxels
            mask = rng.random(shape) > 0.05
        elif kind == 1:  # an unlabelled slab
            mask[tuple(slice(int(rng.integers(0, n)), None) if rng.random() < 0.5
                       else slice(None) for n in shape)] = False
        else:  # one unlabelled voxel
            mask[tuple(int(rng.integers(0, n)) for n in shape)] = False
        limit = float(rng.uniform(0.5, 20))
        full = mask_edge_distance(mask, voxel_size)
        bounded = mask_edge_distance_below(mask, voxel_size, limit)
        below = full < limit
        np.testing.assert_allclose(bounded[below], full[below], rtol=0, atol=1e-9)
        assert np.all(bounded[~below] >= limit - 1e-9)
        np.testing.assert_array_equal(bounded == 0, full == 0)


def test_all_in_and_none_are_the_crop_edge():
    shape, voxel_size = (5, 7), (2.0, 1.0)
    ref = mask_edge_distance(None, voxel_size, shape)
    np.testing.assert_array_equal(mask_edge_distance_below(None, voxel_size, 3.0, shape), ref)
    np.testing.assert_array_equal(
        mask_edge_distance_below(np.ones(shape, bool), voxel_size, 3.0), ref)
