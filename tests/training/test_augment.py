"""Learning-rate schedules (dacapo.ops.schedule) and the added augmentations (rotation,
misalignment, per-section intensity, blur, defective sections)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from funlib.geometry import Coordinate

from dacapo.experiments.trainer_config import AugmentConfig, TrainerConfig
from dacapo.ops.schedule import learning_rate_at, set_learning_rate
from dacapo.training.augment import augment

OFF = dict(mirror=False, transpose=False, intensity_scale=0.0, intensity_shift=0.0)


def test_schedules_by_formula():
    lr, total, w = 1e-3, 110, 10
    assert learning_rate_at(0, total, lr, "cosine", w) == pytest.approx(lr / 10)
    assert learning_rate_at(9, total, lr, "cosine", w) == pytest.approx(lr)
    assert learning_rate_at(10, total, lr, "cosine", w) == pytest.approx(lr)  # t = 0
    assert learning_rate_at(60, total, lr, "cosine", w) == pytest.approx(lr / 2)  # t = 1/2
    assert learning_rate_at(60, total, lr, "cosine", w, 0.1) == pytest.approx(lr * 0.55)
    assert learning_rate_at(60, total, lr, "poly", w) == pytest.approx(lr * 0.5**0.9)
    assert learning_rate_at(109, total, lr, "constant", w) == lr
    with pytest.raises(ValueError, match="lr_schedule"):
        learning_rate_at(0, 10, lr, "step")


def test_set_learning_rate_sets_every_group():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([{"params": [p]}, {"params": [torch.nn.Parameter(torch.zeros(1))]}])
    tc = TrainerConfig(learning_rate=0.01, lr_schedule="cosine", warmup_iterations=4)
    assert set_learning_rate(opt, tc, 1, 100) == pytest.approx(0.005)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.005, 0.005])
    assert TrainerConfig(lr_schedule="x").problems()[0].startswith("trainer.lr_schedule")


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
