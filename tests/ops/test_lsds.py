"""LSDs against a literal reference: one full-volume Gaussian filter per object (Sheridan et al. 2022)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dacapo.ops.lsds import local_shape_descriptors, lsd_sigma, num_lsds


def blob_labels(shape, num, seed, background=0.3) -> np.ndarray:
    """Voronoi cells of random seeds (ids 1..num, some repeated so objects can be split in
    two pieces), with a random fraction of voxels set to background in whole cells."""
    rng = np.random.default_rng(seed)
    points = np.stack([rng.integers(0, s, num) for s in shape], axis=1)
    seeds = np.zeros(shape, np.int64)
    seeds[tuple(points.T)] = np.arange(1, num + 1)
    _, idx = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    labels = seeds[tuple(idx)]
    ids = rng.integers(1, max(2, num - 2), num + 1)  # merge some cells: disconnected objects
    ids[rng.random(num + 1) < background] = 0
    ids[0] = 0
    return ids[labels].astype(np.uint64)


def label_edges(labels: np.ndarray) -> np.ndarray:
    """True at the lower voxel of every axis-neighbour pair with different labels (setting
    them to 0 leaves one-voxel gaps between touching cells)."""
    edges = np.zeros(labels.shape, bool)
    for axis in range(labels.ndim):
        diff = np.diff(labels.astype(np.int64), axis=axis) != 0
        lower = [slice(None)] * labels.ndim
        lower[axis] = slice(0, -1)
        edges[tuple(lower)] |= diff
    return edges


def brute_lsds(labels: np.ndarray, voxel_size, sigma: float, downsample: int = 1) -> np.ndarray:
    """The definition applied literally (float64, world coordinates of voxel centres)."""
    if downsample > 1:
        f = downsample
        small = labels[(slice(None, None, f),) * labels.ndim]
        out = brute_lsds(small, [v * f for v in voxel_size], sigma)
        for axis in range(labels.ndim):
            out = np.repeat(out, f, axis=axis + 1)
        return out[(slice(None),) + tuple(slice(0, n) for n in labels.shape)]
    dims = labels.ndim
    sigma_vox = [sigma / v for v in voxel_size]

    def gauss(a):
        return ndimage.gaussian_filter(a, sigma_vox, mode="constant", cval=0.0, truncate=3.0)

    x = np.meshgrid(
        *[(np.arange(n) + 0.5) * v for n, v in zip(labels.shape, voxel_size)], indexing="ij"
    )
    pairs = [(i, j) for i in range(dims) for j in range(i + 1, dims)]
    out = np.zeros((num_lsds(dims),) + labels.shape)
    for label in np.unique(labels):
        if label == 0:
            continue
        m = (labels == label).astype(np.float64)
        c = gauss(m)
        c1 = np.where(c == 0, 1.0, c)
        mu = [gauss(x[i] * m) / c1 for i in range(dims)]
        cov = {
            (i, j): gauss(x[i] * x[j] * m) / c1 - mu[i] * mu[j]
            for i in range(dims)
            for j in range(i, dims)
        }
        var = [np.maximum(cov[i, i], 0.001) for i in range(dims)]
        channels = [(mu[i] - x[i]) / sigma * 0.5 + 0.5 for i in range(dims)]
        channels += [var[i] / sigma**2 for i in range(dims)]
        channels += [cov[i, j] / np.sqrt(var[i] * var[j]) * 0.5 + 0.5 for i, j in pairs]
        channels += [c]
        inside = labels == label
        for k, ch in enumerate(channels):
            out[k][inside] = np.clip(ch[inside], 0.0, 1.0)
    return out


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
