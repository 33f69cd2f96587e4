"""LSDs against a literal reference: one full-volume Gaussian filter per object (Sheridan et al. 2022)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dacapo.ops.lsds import local_shape_descriptors, lsd_sigma, num_lsds
from tests.references import blob_labels, brute_lsds

CASES = [
    # shape, voxel size, num_lsd_voxels, downsample
    ((18, 30, 34), (8, 4, 4), 2, 1),
    ((18, 30, 34), (8, 4, 4), 2, 2),
    ((20, 21, 23), (4, 6, 5), 1.5, 1),
    ((19, 25, 27), (40, 4, 4), 1, 2),  # σ = 40 nm: 1 voxel in z, 10 in y and x
    ((40, 52), (4, 4), 3, 1),
    ((40, 52), (6, 4), 2, 2),
    ((37, 45), (3, 5), 2.5, 1),
]


@pytest.mark.parametrize("shape,voxel_size,num_lsd_voxels,downsample", CASES)
def test_lsds_equal_literal_definition(shape, voxel_size, num_lsd_voxels, downsample):
    labels = blob_labels(shape, num=14, seed=sum(shape))
    sigma = lsd_sigma(voxel_size, num_lsd_voxels)
    fast = local_shape_descriptors(labels, voxel_size, sigma, downsample)
    ref = brute_lsds(labels, voxel_size, sigma, downsample)
    into = np.full((num_lsds(len(shape)) + 1,) + shape, 7, np.float32)  # a view, not zeroed
    assert local_shape_descriptors(labels, voxel_size, sigma, downsample, out=into[1:]) is not None
    np.testing.assert_array_equal(into[1:], fast)
    assert (into[0] == 7).all()
    assert fast.shape == ref.shape == (num_lsds(len(shape)),) + shape
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, ref, atol=1e-4, rtol=0)
    # the test is not vacuous: every channel varies on the objects
    on = labels != 0
    assert all(np.ptp(ch[on]) > 0.05 for ch in ref)
    # every channel is 0 on background (of the grid the LSDs were computed on)
    seen = labels[(slice(None, None, downsample),) * labels.ndim]
    for axis in range(labels.ndim):
        seen = np.repeat(seen, downsample, axis=axis)
    seen = seen[tuple(slice(0, n) for n in shape)]
    assert not fast[:, seen == 0].any() and fast[:, seen != 0].any()


def test_lsds_of_one_ball_by_hand():
    """A ball far from the crop edge: offsets 0.5 at its centre, equal variances, correlation
    0.5 (no preferred direction), size = Gaussian mass inside the ball."""
    n, r = 41, 8
    z, y, x = np.mgrid[:n, :n, :n] - n // 2
    labels = (z**2 + y**2 + x**2 <= r**2).astype(np.uint8)
    out = local_shape_descriptors(labels, (1, 1, 1), sigma=3.0)
    centre = (slice(None), n // 2, n // 2, n // 2)
    g = ndimage.gaussian_filter(labels.astype(float), 3.0, mode="constant", truncate=3.0)
    np.testing.assert_allclose(out[centre][:3], 0.5, atol=1e-6)
    np.testing.assert_allclose(out[centre][3:6], out[centre][3], atol=1e-6)
    np.testing.assert_allclose(out[centre][6:9], 0.5, atol=1e-6)
    assert out[centre][9] == pytest.approx(g[n // 2, n // 2, n // 2], abs=1e-6)
    # at a voxel on the +x side the centre of mass lies towards -x: offset_x < 0.5
    assert out[2, n // 2, n // 2, n // 2 + r] < 0.45


def test_label_values_and_dtypes_do_not_matter():
    labels = blob_labels((12, 20, 22), num=8, seed=3)
    ref = local_shape_descriptors(labels, (8, 4, 4), 16.0)
    # a relabelling by a permutation with large ids, and int32
    ids = np.unique(labels)
    mapping = {int(i): (int(i) * 7919 + 2**40 if i else 0) for i in ids}
    big = np.vectorize(mapping.get)(labels).astype(np.uint64)
    np.testing.assert_array_equal(local_shape_descriptors(big, (8, 4, 4), 16.0), ref)
    np.testing.assert_array_equal(
        local_shape_descriptors(labels.astype(np.int32), (8, 4, 4), 16.0), ref
    )


def test_deterministic_and_large_object_slabs(monkeypatch):
    """Same output on repeated calls; a small slab budget (large objects processed in
    slabs) gives the same numbers."""
    import dacapo.ops.lsds as lsds_module

    labels = blob_labels((16, 40, 40), num=5, seed=7, background=0.0)
    a = local_shape_descriptors(labels, (8, 4, 4), 16.0)
    b = local_shape_descriptors(labels, (8, 4, 4), 16.0)
    np.testing.assert_array_equal(a, b)
    monkeypatch.setattr(lsds_module, "_SLAB_BUDGET", 4096)
    c = local_shape_descriptors(labels, (8, 4, 4), 16.0)
    np.testing.assert_allclose(c, a, atol=1e-6, rtol=0)


def test_empty_and_full():
    zero = local_shape_descriptors(np.zeros((5, 6, 7), np.uint8), (1, 1, 1), 2.0)
    assert zero.shape == (10, 5, 6, 7) and not zero.any()
    full = np.ones((9, 9), np.uint8)
    ref = brute_lsds(full, (1, 1), 2.0)
    np.testing.assert_allclose(local_shape_descriptors(full, (1, 1), 2.0), ref, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(labels=np.zeros((4, 4, 4, 4), int)), ValueError, "2 or 3 spatial dims"),
        (dict(labels=np.zeros((4, 4), float)), TypeError, "labels: integer dtype"),
        (dict(voxel_size=(1, 1, 1)), ValueError, "voxel_size"),
        (dict(sigma=0.0), ValueError, "sigma"),
        (dict(downsample=0), ValueError, "downsample"),
        (dict(out=np.zeros((6, 4, 4))), ValueError, "out: expected a float32"),
        (dict(out=np.zeros((10, 4, 4), np.float32)), ValueError, "out: expected a float32"),
    ],
)
def test_bad_input(kwargs, error, match):
    args = dict(labels=np.zeros((4, 4), int), voxel_size=(1, 1), sigma=1.0)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        local_shape_descriptors(**args)
