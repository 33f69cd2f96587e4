"""Affinities and their mask against brute-force per-voxel loops (the definitions in `dacapo.ops.affinities`)."""

from __future__ import annotations

import numpy as np
import pytest

from dacapo.ops.affinities import affinities, affinity_mask
from tests.references import brute_affinities, brute_mask

NBH_3D = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (-1, 0, 0), (0, -2, 1), (3, 0, 0), (0, 9, 0),
          (0, 0, -5), (2, -3, 4), (7, 0, 0)]  # the last one is longer than the crop
NBH_2D = [(1, 0), (0, 1), (0, -1), (-3, 2), (0, 9), (5, 5), (-20, 0)]


@pytest.mark.parametrize("background_as_object", [False, True])
@pytest.mark.parametrize(
    "shape,neighborhood,dtype,scale",
    [
        ((7, 11, 13), NBH_3D, np.uint64, 1),
        ((7, 11, 13), NBH_3D, np.uint64, 2**40),  # ids beyond uint16
        ((7, 11, 13), NBH_3D, np.int64, 42),  # max 126: compared as uint8
        ((7, 11, 13), NBH_3D, np.int64, 43),  # max 129: as uint16
        ((7, 11, 13), NBH_3D, np.uint32, 10922),  # max 32766: as uint16
        ((7, 11, 13), NBH_3D, np.uint32, 10923),  # max 32769: as they are
        ((17, 23), NBH_2D, np.int32, 1),
        ((17, 23), NBH_2D, np.int64, -3),  # negative ids
        ((9, 10), NBH_2D, bool, 1),
    ],
)
def test_affinities_equal_brute_force(shape, neighborhood, dtype, scale, background_as_object):
    rng = np.random.default_rng(len(shape))
    # few labels, in runs, so both equal and different neighbours are frequent
    labels = rng.integers(0, 4, shape) * scale
    labels = np.repeat(labels, 2, axis=-1)[..., : shape[-1]].astype(dtype)
    fast = affinities(labels, neighborhood, background_as_object)
    ref = brute_affinities(labels, neighborhood, background_as_object)
    assert fast.dtype == np.uint8 and fast.shape == ref.shape
    np.testing.assert_array_equal(fast, ref)
    assert ref.any() and not ref.all()


@pytest.mark.parametrize("shape,neighborhood", [((6, 9, 8), NBH_3D), ((15, 12), NBH_2D)])
def test_affinity_mask_equals_brute_force(shape, neighborhood):
    rng = np.random.default_rng(1)
    mask = rng.random(shape) < 0.8
    np.testing.assert_array_equal(
        affinity_mask(mask, shape, neighborhood), brute_mask(mask, shape, neighborhood)
    )
    np.testing.assert_array_equal(
        affinity_mask(None, shape, neighborhood), brute_mask(None, shape, neighborhood)
    )


def test_hand_computed_1d_like_case():
    labels = np.array([[1, 1, 2, 0, 0, 2]])
    np.testing.assert_array_equal(affinities(labels, [(0, 1)])[0, 0], [1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(affinities(labels, [(0, 1)], True)[0, 0], [1, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(affinities(labels, [(0, -3)])[0, 0], [0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(affinity_mask(None, (1, 6), [(0, -3)])[0, 0], [0, 0, 0, 1, 1, 1])


def test_bad_input():
    with pytest.raises(ValueError, match="neighborhood: offset"):
        affinities(np.zeros((4, 4), int), [(1, 0, 0)])
    with pytest.raises(TypeError, match="labels: integer dtype"):
        affinities(np.zeros((4, 4)), [(1, 0)])
    with pytest.raises(ValueError, match="mask: shape"):
        affinity_mask(np.ones((3, 4)), (4, 4), [(1, 0)])
