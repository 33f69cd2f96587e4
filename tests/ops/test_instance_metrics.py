"""Instance metrics: hand-computed cases and independent references (skimage VOI, the
CREMI adapted Rand code, IoU matching by linear assignment); the instance evaluator; the
contingency tables behind blockwise evaluation, in original ids (`label_pairs`,
`merge_label_pairs`, `table_from_pairs`)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from funlib.persistence import Array
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from skimage.metrics import variation_of_information as skimage_voi

from dacapo.experiments.tasks.evaluators import InstanceEvaluationScores, InstanceEvaluator
from dacapo.experiments.tasks.evaluators.instance_evaluator import label_scores
from dacapo.ops.instance_metrics import (
    IOU_THRESHOLDS,
    instance_metrics,
    label_pairs,
    merge_label_pairs,
    metrics_from_table,
    table_from_pairs,
)

KEYS = ["voi_split", "voi_merge", "voi", "adapted_rand_error", "precision", "recall", "f1",
        "ap50", "map", "mean_matched_iou"]


def cremi_adapted_rand(seg, gt):
    """The CREMI evaluation's ``adapted_rand`` (cremi/evaluation/rand.py), transcribed."""
    seg_a = np.ravel(gt)
    seg_b = np.ravel(seg)
    n = seg_a.size
    p_ij = sparse.csr_matrix(
        (np.ones(n), (seg_a, seg_b)), shape=(int(seg_a.max()) + 1, int(seg_b.max()) + 1)
    )
    a = p_ij[1:, :]
    b = p_ij[1:, 1:]
    c = p_ij[1:, 0].todense()
    d = b.multiply(b)
    a_i = np.array(a.sum(1))
    b_i = np.array(b.sum(0))
    sum_a = np.sum(a_i * a_i)
    sum_b = np.sum(b_i * b_i) + (np.sum(c) / n)
    sum_ab = np.sum(d) + (np.sum(c) / n)
    precision = sum_ab / sum_b
    recall = sum_ab / sum_a
    return 1.0 - 2.0 * precision * recall / (precision + recall)


def brute_voi(seg, truth):
    """H(S|T), H(T|S) in bits over voxels with truth != 0, by counting pairs."""
    pairs: dict[tuple[int, int], int] = {}
    for t, s in zip(truth.ravel().tolist(), seg.ravel().tolist()):
        if t != 0:
            pairs[t, s] = pairs.get((t, s), 0) + 1
    n = sum(pairs.values())
    rows: dict[int, int] = {}
    cols: dict[int, int] = {}
    for (t, s), c in pairs.items():
        rows[t] = rows.get(t, 0) + c
        cols[s] = cols.get(s, 0) + c
    split = -sum(c / n * math.log2(c / rows[t]) for (t, s), c in pairs.items())
    merge = -sum(c / n * math.log2(c / cols[s]) for (t, s), c in pairs.items())
    return split, merge


def brute_matching(seg, truth):
    """IoU matrix of all non-zero objects (whole sizes), optimal one-to-one assignment per
    threshold (maximum number of pairs with IoU >= t)."""
    t_ids = [i for i in np.unique(truth) if i != 0]
    s_ids = [j for j in np.unique(seg) if j != 0]
    iou = np.zeros((len(t_ids), len(s_ids)))
    for a, i in enumerate(t_ids):
        for b, j in enumerate(s_ids):
            inter = np.sum((truth == i) & (seg == j))
            iou[a, b] = inter / np.sum((truth == i) | (seg == j))
    result = {}
    aps = []
    for t in IOU_THRESHOLDS:
        ok = iou >= t
        rows, cols = linear_sum_assignment(-ok.astype(float)) if ok.size else ([], [])
        matched = [(r, c) for r, c in zip(rows, cols) if ok[r, c]]
        tp = len(matched)
        fp, fn = len(s_ids) - tp, len(t_ids) - tp
        denominator = tp + fp + fn
        aps.append(tp / denominator if denominator else math.nan)
        if t == 0.5:
            result = {
                "precision": tp / (tp + fp) if tp + fp else math.nan,
                "recall": tp / (tp + fn) if tp + fn else math.nan,
                "f1": 2 * tp / (2 * tp + fp + fn) if denominator else math.nan,
                "mean_matched_iou": float(np.mean([iou[r, c] for r, c in matched]))
                if matched else math.nan,
            }
    result["ap50"] = aps[0]
    result["map"] = float(np.mean(aps))
    return result


def check(values: dict, expected: dict) -> None:
    for key, value in expected.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(values[key]), (key, values[key])
        else:
            assert values[key] == pytest.approx(value, abs=1e-12), key


def test_merge_of_two_objects_by_hand():
    m = instance_metrics(np.array([1, 1, 1, 1]), np.array([1, 1, 2, 2]))
    # ARAND: sumA = 8, sumB = 16, sumAB = 8 -> P = 1/2, R = 1 -> 1 - 2/3
    check(m, dict(voi_split=0.0, voi_merge=1.0, voi=1.0, adapted_rand_error=1 / 3,
                  precision=1.0, recall=0.5, f1=2 / 3, ap50=0.5, map=0.05,
                  mean_matched_iou=0.5))


def test_split_with_unlabelled_truth_by_hand():
    truth = np.array([1, 1, 1, 1, 0, 0])
    seg = np.array([1, 1, 2, 2, 2, 3])
    m = instance_metrics(seg, truth)
    # IoU(1, 1) = 2/4, IoU(1, 2) = 2/5 (segment 2's voxel on truth 0 counts), IoU(1, 3) = 0
    check(m, dict(voi_split=1.0, voi_merge=0.0, voi=1.0, adapted_rand_error=1 / 3,
                  precision=1 / 3, recall=1.0, f1=0.5, ap50=1 / 3, map=1 / 30,
                  mean_matched_iou=0.5))


def test_segment_zero_on_labelled_truth_by_hand():
    truth = np.array([1, 1, 1, 2])
    seg = np.array([0, 0, 1, 1])
    m = instance_metrics(seg, truth)
    split = -(0.5 * math.log2(2 / 3) + 0.25 * math.log2(1 / 3))
    # CREMI: sumA = 10, sumB = 4 + 2/4, sumAB = 2 + 2/4 -> P = 5/9, R = 1/4, F = 10/29
    check(m, dict(voi_split=split, voi_merge=0.5, voi=split + 0.5,
                  adapted_rand_error=19 / 29))
    assert cremi_adapted_rand(seg, truth) == pytest.approx(19 / 29)


def test_empty_cases():
    nan = math.nan
    zeros = np.zeros(6, int)
    objects = np.array([1, 1, 2, 2, 0, 3])
    check(instance_metrics(zeros, zeros), {k: nan for k in KEYS})
    check(instance_metrics(objects, zeros), dict(
        voi_split=nan, voi_merge=nan, voi=nan, adapted_rand_error=nan, precision=0.0,
        recall=nan, f1=0.0, ap50=0.0, map=0.0, mean_matched_iou=nan))
    merge = -(2 / 5 * math.log2(2 / 5) * 2 + 1 / 5 * math.log2(1 / 5))
    check(instance_metrics(zeros, objects), dict(
        voi_split=0.0, voi_merge=merge, voi=merge, precision=nan, recall=0.0, f1=0.0,
        ap50=0.0, map=0.0, mean_matched_iou=nan))
    check(instance_metrics(objects * 7, objects), dict(
        voi=0.0, adapted_rand_error=0.0, precision=1.0, recall=1.0, f1=1.0, ap50=1.0, map=1.0,
        mean_matched_iou=1.0))


@pytest.mark.parametrize("seed", range(6))
def test_random_labels_equal_references(seed):
    rng = np.random.default_rng(seed)
    shape = (6, 9, 11) if seed % 2 else (23, 29)
    truth = rng.integers(0, 6, shape)
    truth = np.repeat(truth, 2, axis=-1)[..., : shape[-1]]  # runs: overlaps of all sizes
    seg = np.where(rng.random(shape) < 0.7, truth, rng.integers(0, 9, shape))
    if seed >= 3:  # large, sparse ids and other dtypes
        seg = (seg.astype(np.uint64) * 10**12 + 5) * (seg != 0)
        truth = truth.astype(np.int32)
    m = instance_metrics(seg, truth)
    _, seg_compact = np.unique(seg, return_inverse=True)  # skimage/CREMI need small ids
    seg_compact = seg_compact.reshape(shape) * (seg != 0)
    split, merge = brute_voi(seg, truth)
    sk = skimage_voi(truth, seg_compact, ignore_labels=(0,))
    assert m["voi_split"] == pytest.approx(split, abs=1e-10) and sk[0] == pytest.approx(split)
    assert m["voi_merge"] == pytest.approx(merge, abs=1e-10) and sk[1] == pytest.approx(merge)
    assert m["voi"] == pytest.approx(split + merge, abs=1e-10)
    assert m["adapted_rand_error"] == pytest.approx(
        cremi_adapted_rand(seg_compact, truth.astype(np.int64)), abs=1e-12
    )
    check(m, brute_matching(seg, truth))
    assert 0 < m["map"] <= m["ap50"] <= 1


def test_matching_tie_at_half():
    """Two segments each covering half of one truth object (IoU exactly 0.5 with it): one
    match, never two."""
    truth = np.array([1, 1, 1, 1])
    seg = np.array([1, 1, 2, 2])
    m = instance_metrics(seg, truth)
    check(m, dict(precision=0.5, recall=1.0, ap50=0.5, mean_matched_iou=0.5))
    check(m, brute_matching(seg, truth))


def test_bad_input():
    with pytest.raises(ValueError, match="seg shape"):
        instance_metrics(np.zeros(3, int), np.zeros(4, int))
    with pytest.raises(TypeError, match="truth: integer"):
        instance_metrics(np.zeros(3, int), np.zeros(3))
    with pytest.raises(TypeError, match="seg: integer"):
        instance_metrics(np.full(3, 0.5), np.zeros(3, int))


# ---------------------------------------------------------------------------------------
# evaluator and scores
# ---------------------------------------------------------------------------------------


def arr(data, offset=(0, 0, 0), voxel_size=(8, 4, 4)):
    names = ["z", "y", "x"] if data.ndim == 3 else ["c^", "z", "y", "x"]
    return Array(data, offset=offset, voxel_size=voxel_size, axis_names=names)


def test_evaluator_on_arrays_and_paths(tmp_path):
    from funlib.persistence import prepare_ds

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 5, (6, 8, 10)).astype(np.uint64)
    seg = np.where(rng.random(truth.shape) < 0.8, truth, 7).astype(np.uint64)
    evaluator = InstanceEvaluator()
    scores = evaluator.evaluate(arr(seg), arr(truth[None]))  # GT with a singleton channel
    assert isinstance(scores, InstanceEvaluationScores)
    check(scores.to_dict(), instance_metrics(seg, truth))
    # zarr path for the output, and a GT array on a larger ROI: evaluated on the overlap
    path = tmp_path / "seg.zarr" / "seg"
    ds = prepare_ds(str(path), shape=(4, 8, 10), offset=(16, 0, 0), voxel_size=(8, 4, 4),
                    axis_names=["z", "y", "x"], dtype=np.uint64, mode="w")
    ds[ds.roi] = seg[2:6]
    check(evaluator.evaluate(str(path), arr(truth)).to_dict(),
          instance_metrics(seg[2:6], truth[2:6]))
    with pytest.raises(ValueError, match="voxel size"):
        evaluator.evaluate(arr(seg), arr(truth, voxel_size=(4, 4, 4)))
    with pytest.raises(ValueError, match="do not overlap"):
        evaluator.evaluate(arr(seg), arr(truth, offset=(800, 0, 0)))
    with pytest.raises(ValueError, match="evaluation_array: expected a label array"):
        evaluator.evaluate(arr(seg), arr(np.stack([truth, truth])))


def test_scores_criteria_directions_and_bounds():
    scores = InstanceEvaluator().score
    criteria = KEYS[:-1] + ["f1_50_95", "mean_matched_iou"]
    assert scores.criteria == criteria
    lower = {"voi_split", "voi_merge", "voi", "adapted_rand_error"}
    for c in criteria:
        assert scores.higher_is_better(c) == (c not in lower)
        assert math.isnan(getattr(scores, c))
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 4, (20, 20))
    for seg in (truth, rng.integers(0, 4, (20, 20)), np.zeros((20, 20), int)):
        values = InstanceEvaluationScores(label_scores(seg, truth))
        for c in criteria:
            lo, hi = values.bounds(c)
            assert math.isnan(values[c]) or lo <= values[c] <= hi, c
    # better by its own direction: a perfect segmentation beats a random one everywhere
    perfect = InstanceEvaluationScores(label_scores(truth, truth))
    noisy = InstanceEvaluationScores(label_scores(rng.integers(0, 4, (20, 20)), truth))
    evaluator = InstanceEvaluator()
    for c in criteria:
        assert evaluator.compare(perfect[c], noisy[c], c), c


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
