"""Binary metrics against brute-force references (all voxel pairs, world coordinates), and the
additive statistics behind blockwise evaluation (`binary_stats` of a region with an exact
radius, merged)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dacapo.ops.binary_metrics import (
    BINARY_METRIC_NAMES,
    BinaryStats,
    binary_metrics,
    binary_stats,
    merge_binary_stats,
    metrics_from_stats,
)
from tests.references import brute_binary_metrics as reference


def assert_metrics_equal(got: dict, expected: dict) -> None:
    assert list(got) == list(BINARY_METRIC_NAMES)
    for name in BINARY_METRIC_NAMES:
        a, b = got[name], expected[name]
        if math.isnan(b):
            assert math.isnan(a), f"{name}: {a} != NaN"
        else:
            assert a == pytest.approx(b, rel=1e-5, abs=1e-6), name


def test_21_metrics():
    assert len(BINARY_METRIC_NAMES) == 21 == len(set(BINARY_METRIC_NAMES))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    "shape,voxel_size",
    [((9, 11), (4, 2)), ((7, 8), (1, 1)), ((5, 6, 7), (8, 4, 4)), ((6, 5, 4), (3, 5, 2))],
)
def test_random_masks_vs_brute_force(seed, shape, voxel_size):
    rng = np.random.default_rng(seed)
    density_s, density_t = rng.uniform(0.05, 0.6, 2)
    test = rng.random(shape) < density_s
    truth = rng.random(shape) < density_t
    tol, clip = 1.5 * min(voxel_size), 2.5 * max(voxel_size)
    got = binary_metrics(test, truth, voxel_size, tol, clip)
    assert_metrics_equal(got, reference(test, truth, voxel_size, tol, clip))


def test_sparse_far_masks_vs_brute_force():
    """Far-apart objects (long distances, large Hausdorff), anisotropic."""
    test = np.zeros((12, 10, 9), bool)
    truth = np.zeros_like(test)
    test[1:3, 1:4, 1:3] = True
    test[10, 8, 7] = True
    truth[2:4, 2:5, 1:4] = True
    voxel_size = (8, 4, 4)
    got = binary_metrics(test, truth, voxel_size, 10.0, 20.0)
    assert_metrics_equal(got, reference(test, truth, voxel_size, 10.0, 20.0))


def test_shift_along_z_anisotropic_by_hand():
    """A 4x4x4 cube shifted by one voxel along z (voxel 8x4x4 nm): every FP voxel is 8 nm
    from the truth, every FN voxel 8 nm from the test."""
    truth = np.zeros((10, 10, 10), bool)
    truth[2:6, 3:7, 3:7] = True
    test = np.roll(truth, 1, axis=0)
    m = binary_metrics(test, truth, (8, 4, 4), tol_distance=4.0, clip_distance=5.0)
    # |S| = |T| = 64, TP = 48, FP = FN = 16 (one 4x4 face each)
    assert m["hausdorff"] == 8.0
    assert m["dice"] == pytest.approx(2 * 48 / 128)
    assert m["jaccard"] == pytest.approx(48 / 80)
    assert m["mean_false_positive_distance"] == pytest.approx(16 * 8 / 64)
    assert m["mean_false_negative_distance"] == pytest.approx(16 * 8 / 64)
    assert m["mean_false_distance"] == pytest.approx(2.0)
    assert m["mean_false_positive_distance_clipped"] == pytest.approx(16 * 5 / 64)
    assert m["mean_false_distance_clipped"] == pytest.approx(1.25)
    # tolerance 4 nm < 8 nm: all 16 FP (and FN) voxels count
    assert m["false_positive_rate_with_tolerance"] == pytest.approx(16 / (1000 - 64))
    assert m["false_negative_rate_with_tolerance"] == pytest.approx(16 / 64)
    assert m["precision_with_tolerance"] == pytest.approx(48 / 64)
    m = binary_metrics(test, truth, (8, 4, 4), tol_distance=8.0, clip_distance=5.0)
    assert m["false_negative_rate_with_tolerance"] == 0.0
    assert m["precision_with_tolerance"] == 1.0 and m["f1_score_with_tolerance"] == 1.0
    # the same shift along x is 4 nm away
    test_x = np.roll(truth, 1, axis=2)
    m = binary_metrics(test_x, truth, (8, 4, 4), tol_distance=4.0, clip_distance=5.0)
    assert m["hausdorff"] == 4.0
    assert m["mean_false_positive_distance"] == pytest.approx(16 * 4 / 64)
    assert m["false_positive_rate_with_tolerance"] == 0.0


def test_rates_and_voi_by_hand():
    truth = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    test = np.array([1, 1, 0, 0, 1, 0, 0, 0], bool)
    m = binary_metrics(test, truth, (2,), tol_distance=0.0, clip_distance=10.0)
    # TP=2, FP=1, FN=2, TN=3
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(0.5)
    assert m["f1_score"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert m["false_positive_rate"] == pytest.approx(1 / 4)
    assert m["false_discovery_rate"] == pytest.approx(1 / 3)
    assert m["false_negative_rate"] == pytest.approx(0.5)
    # FP voxel 4 is 2 from truth voxel 3; FN voxels 2, 3 are 2 from S voxels 1, 4
    assert m["hausdorff"] == 2.0
    assert m["mean_false_positive_distance"] == pytest.approx(2 / 3)
    assert m["mean_false_negative_distance"] == pytest.approx(4 / 4)
    # VOI = 2 H(S,T) - H(S) - H(T), counts (2, 1, 2, 3) / 8
    h = lambda *c: -sum(x / 8 * math.log2(x / 8) for x in c)  # noqa: E731
    assert m["voi"] == pytest.approx(2 * h(2, 1, 2, 3) - h(3, 5) - h(4, 4))


def test_identical_masks():
    mask = np.zeros((6, 6, 6), bool)
    mask[1:4, 2:5, 0:3] = True
    m = binary_metrics(mask, mask, (8, 4, 4), 1.0, 10.0)
    for name in ("dice", "jaccard", "precision", "recall", "f1_score", "f1_score_with_tolerance"):
        assert m[name] == 1.0
    for name in ("hausdorff", "voi", "mean_false_distance", "false_positive_rate"):
        assert m[name] == 0.0


def test_empty_mask_conventions():
    empty = np.zeros((4, 5), bool)
    full = np.zeros((4, 5), bool)
    full[1:3, 1:3] = True
    both = binary_metrics(empty, empty, (1, 1), 1.0, 2.0)
    assert both["hausdorff"] == 0.0
    assert all(math.isnan(v) for k, v in both.items() if k != "hausdorff")
    for test, truth in ((empty, full), (full, empty)):
        one = binary_metrics(test, truth, (1, 1), 1.0, 2.0)
        assert math.isnan(one["hausdorff"])
        assert one["dice"] == 0.0 and one["jaccard"] == 0.0
        others = [k for k in BINARY_METRIC_NAMES if k not in ("dice", "jaccard", "hausdorff")]
        assert all(math.isnan(one[k]) for k in others)


def test_f1_nan_when_precision_and_recall_zero():
    test = np.zeros((3, 8), bool)
    truth = np.zeros((3, 8), bool)
    test[0, 0] = True
    truth[2, 7] = True
    m = binary_metrics(test, truth, (1, 1), tol_distance=1.0, clip_distance=3.0)
    assert m["precision"] == 0.0 and m["recall"] == 0.0
    assert math.isnan(m["f1_score"])
    assert m["dice"] == 0.0
    assert m["hausdorff"] == pytest.approx(math.hypot(2, 7))
    # with tolerance: TP_tol = 2 - 1 - 1 = 0
    assert math.isnan(m["f1_score_with_tolerance"])


def test_truth_fills_array_gives_nan_rates():
    truth = np.ones((3, 3), bool)
    test = np.zeros((3, 3), bool)
    test[1, 1] = True
    m = binary_metrics(test, truth, (1, 1), 1.0, 1.0)
    assert math.isnan(m["false_positive_rate"])
    assert m["recall"] == pytest.approx(1 / 9)


def test_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        binary_metrics(np.zeros((2, 3), bool), np.zeros((3, 2), bool), (1, 1), 1, 1)
    with pytest.raises(ValueError, match="voxel_size"):
        binary_metrics(np.zeros((2, 3), bool), np.zeros((2, 3), bool), (1, 1, 1), 1, 1)


def test_binary_stats_of_halves_with_context_merge_to_the_whole():
    """Two halves read with a context of r voxels: exact up to r; merged == whole."""
    rng = np.random.default_rng(1)
    truth = rng.random((12, 14, 10)) < 0.3
    test = np.roll(truth, 1, axis=1) ^ (rng.random(truth.shape) < 0.05)
    vs, tol, clip = (2.0, 1.0, 1.0), 1.5, 2.5
    whole = binary_stats(test, truth, vs, tol, clip)
    r = 3  # voxels along axis 0 = 6 world units >= clip, tol
    halves = [
        binary_stats(test[: 6 + r], truth[: 6 + r], vs, tol, clip,
                     region=(slice(0, 6), slice(None), slice(None)), exact_radius=6.0),
        binary_stats(test[6 - r:], truth[6 - r:], vs, tol, clip,
                     region=(slice(r, None), slice(None), slice(None)), exact_radius=6.0),
    ]
    merged = merge_binary_stats(halves)
    assert merged.fp_far == merged.fn_far == 0  # every false distance here is < 6
    for field in BinaryStats._fields:
        assert getattr(merged, field) == pytest.approx(getattr(whole, field), rel=1e-9), field
    got = metrics_from_stats(merged)
    expected = binary_metrics(test, truth, vs, tol, clip)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9, nan_ok=True), key


def test_binary_stats_far_voxel_by_hand():
    """One FP voxel 10 units from the truth, read without the truth in its block: counted
    as far (distance > exact radius), clipped and tolerance values still exact, the
    unclipped metrics NaN."""
    test = np.zeros(20, bool)
    truth = np.zeros(20, bool)
    truth[2:5] = True
    test[2:5] = True
    test[14] = True  # 10 from voxel 4
    vs, tol, clip = (1.0,), 2.0, 3.0
    block = binary_stats(test[10:], truth[10:], vs, tol, clip, exact_radius=3.0)
    assert block.fp_far == 1 and block.fp_tol == 1
    assert block.fp_sum_clipped == 3.0 and block.fp_sum == 0.0
    rest = binary_stats(test[:10], truth[:10], vs, tol, clip, exact_radius=3.0)
    got = metrics_from_stats(merge_binary_stats([rest, block]))
    expected = binary_metrics(test, truth, vs, tol, clip)
    assert expected["hausdorff"] == 10.0
    assert math.isnan(got["hausdorff"]) and math.isnan(got["mean_false_positive_distance"])
    for key in ("mean_false_positive_distance_clipped", "precision_with_tolerance",
                "false_positive_rate_with_tolerance", "dice", "voi"):
        assert got[key] == pytest.approx(expected[key]), key
    assert expected["mean_false_positive_distance_clipped"] == pytest.approx(3.0 / 4)
