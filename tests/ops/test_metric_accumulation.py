"""The additive partial results behind blockwise evaluation, against brute-force twins:
contingency tables in original ids (`label_pairs`, `merge_label_pairs`, `table_from_pairs`)
and binary statistics of a region with an exact radius (`binary_stats`)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from dacapo.ops.binary_metrics import (
    BinaryStats,
    binary_metrics,
    binary_stats,
    merge_binary_stats,
    metrics_from_stats,
)
from dacapo.ops.instance_metrics import (
    instance_metrics,
    label_pairs,
    merge_label_pairs,
    metrics_from_table,
    table_from_pairs,
)


def _brute_pairs(seg, truth) -> Counter:
    return Counter(zip(truth.ravel().tolist(), seg.ravel().tolist()))


def _as_counter(pairs) -> Counter:
    return Counter(
        dict(zip(zip(pairs.truth_ids.tolist(), pairs.seg_ids.tolist()), pairs.counts.tolist()))
    )


@pytest.mark.parametrize("large", [False, True])
def test_label_pairs_and_merge_vs_voxel_count(large):
    rng = np.random.default_rng(0)
    ids = np.array([0, 3, 17, 2**40 + 5, 123456789] if large else [0, 1, 2, 3, 9], np.uint64)
    truth = ids[rng.integers(0, 5, (9, 10, 11))]
    seg = ids[rng.integers(0, 5, (9, 10, 11))]
    whole = label_pairs(seg, truth)
    assert _as_counter(whole) == _brute_pairs(seg, truth)
    parts = [label_pairs(seg[:4], truth[:4]), label_pairs(seg[4:, :3], truth[4:, :3]),
             label_pairs(seg[4:, 3:], truth[4:, 3:])]
    merged = merge_label_pairs(parts)
    assert _as_counter(merged) == _brute_pairs(seg, truth)
    assert len(set(zip(merged.truth_ids.tolist(), merged.seg_ids.tolist()))) == len(merged.counts)
    # the metrics of the merged table are those of the whole volume
    got = metrics_from_table(table_from_pairs(merged))
    expected = instance_metrics(seg, truth)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12, nan_ok=True), key


def test_table_from_pairs_keeps_zero_as_index_zero():
    """Index 0 is label 0 (present or not), the other ids in increasing order."""
    seg = np.array([[0, 5, 5], [7, 7, 7]], np.uint64)
    truth = np.array([[9, 9, 9], [0, 4, 4]], np.uint64)
    table = table_from_pairs(label_pairs(seg, truth))
    assert table.num_voxels == 6
    assert list(table.truth_sizes) == [1, 2, 3]  # ids 0, 4, 9
    assert list(table.seg_sizes) == [1, 2, 3]  # ids 0, 5, 7
    table = table_from_pairs(label_pairs(seg + 1, truth + 1))  # no label 0 at all
    assert list(table.truth_sizes) == [0, 1, 2, 3] and list(table.seg_sizes) == [0, 1, 2, 3]
    assert metrics_from_table(table)["voi"] == pytest.approx(
        instance_metrics(seg + 1, truth + 1)["voi"]
    )


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
