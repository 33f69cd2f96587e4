"""`mask_edge_distance_below` (the bounded mask-edge distance behind ``mask_distances``)
against the full `mask_edge_distance` (itself checked against a brute force in
test_distances): equal below the limit, at least the limit above it."""

from __future__ import annotations

import numpy as np
import pytest

from dacapo.ops.distances import mask_edge_distance, mask_edge_distance_below


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
