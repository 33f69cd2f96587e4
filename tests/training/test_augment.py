"""Augmentations (`dacapo.training.augment`): rotation, misalignment, per-section intensity,
blur, defective sections, the elastic field; mirror and transpose keep arrays aligned,
intensity changes are deterministic and leave labels alone."""

from __future__ import annotations

import math

import numpy as np
from funlib.geometry import Coordinate

from dacapo.experiments.trainer_config import AugmentConfig
from dacapo.training.augment import augment, mirror_and_transpose

OFF = dict(mirror=False, transpose=False, intensity_scale=0.0, intensity_shift=0.0)


def test_rotation_moves_a_point_by_the_drawn_angle():
    vs = Coordinate(1, 1)
    labels = np.zeros((41, 41), np.uint8)
    labels[19:22, 29:32] = 1  # a 3x3 blob 10 voxels right of the centre
    cfg = AugmentConfig(rotate=True, **OFF)
    raw, (out,) = augment(labels.astype(np.float32)[None], [labels], vs, cfg,
                          np.random.default_rng(5))
    angle = np.random.default_rng(5).uniform(0, 2 * math.pi)
    # the output at p shows the input at R p: the point moves to R^-1 (0, 10)
    y, x = np.argwhere(out == 1).mean(axis=0) - 20
    ey, ex = 10 * math.sin(angle), 10 * math.cos(angle)  # R(-angle) (0, 10)
    assert abs(y - ey) <= 0.5 and abs(x - ex) <= 0.5
    assert abs((out == 1).sum() - 9) <= 2
    assert raw.shape == (1, 41, 41) and set(np.unique(out)) <= {0, 1}


def test_rotation_margin_covers_the_rotated_corners():
    cfg = AugmentConfig(rotate=True)
    m = cfg.elastic_margin(Coordinate(40, 4, 4), Coordinate(400, 100, 60))
    half_diag = math.hypot(100, 60) / 2
    assert m[0] == 0 and m[1] >= half_diag - 50 and m[2] >= half_diag - 30
    assert m[1] % 4 == 0 and m[2] % 4 == 0


def test_misalignment_shifts_sections_of_raw_and_labels_alike():
    vs = Coordinate(10, 1, 1)
    rng = np.random.default_rng(0)
    labels = rng.integers(1, 5, size=(8, 32, 32)).astype(np.uint8)
    cfg = AugmentConfig(misalign_probability=1.0, misalign_max=3.0, **OFF)
    raw, (out,) = augment(labels.astype(np.float32)[None], [labels], vs, cfg,
                          np.random.default_rng(3))
    assert np.array_equal(np.rint(raw[0]).astype(np.uint8), out)  # aligned with each other
    moved = [z for z in range(8) if not np.array_equal(out[z], labels[z])]
    assert moved and len(moved) < 8  # some sections moved, not all
    # a moved section is the original shifted in-plane (interior compared)
    z = moved[0]
    found = any(np.array_equal(out[z, 6:-6, 6:-6], labels[z, 6 + dy:26 + dy, 6 + dx:26 + dx])
                for dy in range(-3, 4) for dx in range(-3, 4))
    assert found


def test_section_intensity_missing_and_low_contrast_sections():
    vs = Coordinate(40, 4, 4)
    raw = np.random.default_rng(1).random((1, 6, 16, 16)).astype(np.float32) + 1
    lab = np.zeros((6, 16, 16), np.uint8)
    out, _ = augment(raw, [lab], vs, AugmentConfig(section_intensity=0.2, **OFF),
                     np.random.default_rng(2))
    for z in range(6):  # per section an affine map a_z x + b_z with |a_z - 1|, |b_z| <= 0.2
        a, b = np.polyfit(raw[0, z].ravel(), out[0, z].ravel(), 1)
        assert abs(a - 1) <= 0.2 + 1e-4 and abs(b) <= 0.2 + 1e-4
        assert np.allclose(out[0, z], a * raw[0, z] + b, atol=1e-4)
    gone, _ = augment(raw, [lab], vs, AugmentConfig(missing_sections=1.0, **OFF),
                      np.random.default_rng(2))
    assert not gone.any()
    low, _ = augment(raw, [lab], vs, AugmentConfig(low_contrast_sections=1.0, **OFF),
                     np.random.default_rng(2))
    assert np.allclose(low[0].std(axis=(1, 2)), raw[0].std(axis=(1, 2)) / 10, rtol=1e-4)


def test_blur_is_an_in_plane_gaussian():
    from scipy.ndimage import gaussian_filter

    vs = Coordinate(40, 4, 4)
    raw = np.zeros((1, 3, 21, 21), np.float32)
    raw[0, 1, 10, 10] = 1
    cfg = AugmentConfig(blur=2.0, **OFF)
    for seed in range(6):
        rng = np.random.default_rng(seed)
        out, _ = augment(raw, [np.zeros((3, 21, 21), np.uint8)], vs, cfg, rng)
        r = np.random.default_rng(seed)
        if r.random() < 0.5:
            sigma = r.uniform(0, 2.0)
            ref = gaussian_filter(raw, [0, 0, sigma, sigma], mode="nearest")
            assert np.allclose(out, ref, atol=1e-6) and out[0, 0].max() == 0
        else:
            assert np.array_equal(out, raw)


def test_elastic_field_does_not_move_points_across_sections():
    from dacapo.ops.sections import section_axes
    from dacapo.training.augment import elastic_field

    assert section_axes(Coordinate(50, 4, 4)) == [0]
    assert section_axes(Coordinate(16, 8, 8)) == []  # 2x: not sections
    cfg = AugmentConfig(elastic_magnitude=40.0, elastic_spacing=200.0)
    points = np.random.default_rng(0).uniform(-400, 400, size=(500, 3))
    d = elastic_field(Coordinate(150, 800, 800), cfg, Coordinate(50, 4, 4),
                      np.random.default_rng(1))(points)
    assert np.all(d[:, 0] == 0) and np.std(d[:, 1:]) > 10  # in-plane only
    iso = elastic_field(Coordinate(800, 800, 800), cfg, Coordinate(8, 8, 8),
                        np.random.default_rng(1))(points)
    assert np.std(iso[:, 0]) > 10  # isotropic: every axis
    assert cfg.elastic_margin(Coordinate(50, 4, 4)) == Coordinate(0, 120, 120)


def _ramp(shape):
    return np.arange(np.prod(shape), dtype=np.float32).reshape(shape)


def test_mirror_and_transpose_keep_arrays_aligned():
    """raw (input ROI) and gt (bigger GT region) share a centre: after any flip or axis
    swap, the gt crop at the raw's place still equals the raw."""
    vs = Coordinate(40, 8, 8)
    gt = _ramp((6, 12, 12))
    raw = gt[None, 1:5, 2:10, 2:10].copy()  # centred inside the gt region
    seen = set()
    for seed in range(200):
        cfg = AugmentConfig(intensity_scale=0, intensity_shift=0)
        r, g = mirror_and_transpose([raw, gt], vs, cfg, np.random.default_rng(seed))
        np.testing.assert_array_equal(r[0], g[1:5, 2:10, 2:10])
        seen.add(g.tobytes())
        # z (40 nm) is never swapped with y/x (8 nm)
        assert g.shape == gt.shape
    assert len(seen) == 16  # 8 flip combinations x (y, x swapped or not), nothing else


def test_transpose_only_between_axes_of_equal_extent():
    vs = Coordinate(8, 8)
    a = _ramp((4, 6))
    for seed in range(10):
        (out,) = mirror_and_transpose([a], vs, AugmentConfig(mirror=False),
                                      np.random.default_rng(seed))
        np.testing.assert_array_equal(out, a)


def test_intensity_and_determinism():
    vs = Coordinate(8, 8)
    raw = np.full((1, 16, 16), 0.5, np.float32)
    labels = np.arange(256, dtype=np.uint32).reshape(16, 16)
    cfg = AugmentConfig(mirror=False, transpose=False, intensity_scale=0.2,
                        intensity_shift=0.1, gamma=0.3, noise=0.05)
    outs = []
    for _ in range(2):
        r, (lab,) = augment(raw, [labels], vs, cfg, np.random.default_rng(7))
        outs.append(r)
        np.testing.assert_array_equal(lab, labels)  # intensity changes leave labels alone
    np.testing.assert_array_equal(outs[0], outs[1])  # same generator state, same result
    r, _ = augment(raw, [labels], vs, AugmentConfig(mirror=False, transpose=False,
                   intensity_scale=0.2, intensity_shift=0.1), np.random.default_rng(3))
    value = float(r[0, 0, 0])  # 0.5 * a + b with a in [0.8, 1.2], b in [-0.1, 0.1]
    assert np.all(r == value) and 0.3 <= value <= 0.7
    assert np.std(outs[0]) > 0  # noise


def test_elastic_keeps_labels_and_shapes():
    vs = Coordinate(16, 8, 8)
    labels = np.zeros((10, 24, 24), np.uint32)
    labels[:, :12] = 3
    labels[:, 12:] = 9
    raw = labels[None].astype(np.float32) / 10
    cfg = AugmentConfig(mirror=False, transpose=False, intensity_scale=0, intensity_shift=0,
                        elastic_magnitude=12, elastic_spacing=64)
    r, (lab,) = augment(raw, [labels], vs, cfg, np.random.default_rng(1))
    assert r.shape == raw.shape and lab.shape == labels.shape
    assert set(np.unique(lab)) <= {3, 9}  # nearest neighbour: no new label values
    assert not np.array_equal(lab, labels)  # the field moved the boundary
    # raw (linear) follows the labels (nearest) away from the boundary
    np.testing.assert_allclose(r[0][lab == 3][:50], 0.3, atol=0.05)
    assert cfg.elastic_margin(vs) == Coordinate(48, 40, 40)
    assert AugmentConfig(gamma=-1).problems() == [
        "trainer.augment.gamma: must be >= 0, got -1"]


def _coordinates_per_point(displacement, shape, voxel_size) -> np.ndarray:
    """The sampling coordinates by the per-point formulas (a list of world points, the
    displacements of its parts summed in order: elastic, rotation, misalignment)."""
    from itertools import product

    dims = len(shape)
    vs = np.asarray(voxel_size, dtype=float)
    centre = (np.asarray(shape) - 1) / 2.0
    points = np.array([(np.asarray(i) - centre) * vs for i in product(*map(range, shape))])
    total = np.zeros_like(points)
    if displacement.elastic is not None:
        total += displacement.elastic(points)
    if displacement.rotation is not None:
        c, s = displacement.rotation
        y, x = points[:, -2].copy(), points[:, -1].copy()
        total[:, -2] += c * y - s * x - y
        total[:, -1] += s * y + c * x - x
    if displacement.misalign is not None:
        cut, slip, shift, t = displacement.misalign
        z = points[:, 0]
        moved = np.abs(z - cut) < t / 2 if slip else z >= cut
        total[:, 1:] += np.where(moved[:, None], shift[None], 0.0)
    src = (points + total) / vs + centre
    return np.moveaxis(src.reshape(*shape, dims), -1, 0)


def test_displacement_coordinates_equal_the_per_point_formulas():
    from dacapo.training.augment import spatial_transform

    cases = [  # (voxel size, crop shape, config)
        (Coordinate(40, 8, 8), (6, 15, 13), AugmentConfig(
            rotate=True, elastic_magnitude=20.0, misalign_probability=1.0, misalign_max=24)),
        (Coordinate(8, 8, 8), (7, 9, 11), AugmentConfig(rotate=True)),
        (Coordinate(4, 4), (17, 12), AugmentConfig(rotate=True, elastic_magnitude=6.0)),
        (Coordinate(40, 8, 8), (5, 10, 10), AugmentConfig(rotate=False, misalign_probability=1.0,
                                                          misalign_max=16)),
    ]
    for seed, (vs, shape, cfg) in enumerate(cases):
        extent = Coordinate(n * v for n, v in zip(shape, vs))
        d = spatial_transform(extent, cfg, vs, np.random.default_rng(seed))
        got = d.coordinates(shape, vs)
        want = _coordinates_per_point(d, shape, vs)
        assert got.shape == (len(shape), *shape)
        np.testing.assert_array_equal(got, want)
        assert not np.array_equal(got, _coordinates_per_point(
            type(d)(), shape, vs)), "the displacement moves something"
