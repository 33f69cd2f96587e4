"""Object matching (StarDist's F1 / AP at IoU thresholds): hand-computed cases and
independent references (all-pairs IoU by loops over objects, matching by enumerating all
permutations, StarDist's dense assignment)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from dacapo.ops.object_matching import (
    IOU_THRESHOLDS,
    add_counts,
    match_counts,
    object_matching,
)
from tests.ops.references import brute_ious, random_pair


def brute_matching(iou, threshold):
    """(TP, matched IoU sum): the most pairs with IoU >= threshold (> 0), then the largest
    IoU sum, by enumerating every assignment of the padded square matrix."""
    nt, npred = iou.shape
    n = max(nt, npred)
    square = np.zeros((n, n))
    square[:nt, :npred] = iou
    best = (0, 0.0)
    for perm in itertools.permutations(range(n)):
        vals = [square[i, perm[i]] for i in range(n)]
        ok = [v for v in vals if v >= threshold and v > 0]
        cand = (len(ok), float(sum(ok)))
        if cand[0] > best[0] or (cand[0] == best[0] and cand[1] > best[1] + 1e-12):
            best = cand
    return best


def stardist_dense(iou, threshold):
    """(TP, matched IoU sum) from one dense assignment with StarDist's cost
    -[IoU >= t] - IoU / 2n, the tie-break term kept for candidate pairs only (StarDist's
    also counts the IoU of pairs below t, which can change which pairs match, not TP)."""
    n = min(iou.shape)
    if n == 0 or not np.any(iou >= threshold):
        return 0, 0.0
    ok = iou >= threshold
    costs = -ok.astype(float) - np.where(ok, iou, 0.0) / (2 * n)
    r, c = linear_sum_assignment(costs)
    ok = iou[r, c] >= threshold
    return int(ok.sum()), float(iou[r, c][ok].sum())


def square_pair():
    """Two 4 x 4 squares shifted by one pixel: intersection 12, union 20, IoU 0.6."""
    truth = np.zeros((10, 10), np.uint16)
    truth[2:6, 2:6] = 1
    pred = np.zeros_like(truth)
    pred[3:7, 2:6] = 5
    return pred, truth


def test_two_squares_by_hand():
    pred, truth = square_pair()
    s = object_matching(pred, truth)
    assert s["tp_50"] == 1 and s["fp_50"] == 0 and s["fn_50"] == 0
    assert s["f1_50"] == 1.0 and s["ap_50"] == 1.0 and s["mean_matched_iou_50"] == 0.6
    assert s["tp_60"] == 1 and s["tp_65"] == 0
    assert s["ap_65"] == 0.0 and s["f1_65"] == 0.0 and s["precision_65"] == 0.0
    assert math.isnan(s["mean_matched_iou_65"])
    # matched at 0.5, 0.55, 0.6 of the ten thresholds
    assert s["ap_mean"] == pytest.approx(0.3) and s["f1_mean"] == pytest.approx(0.3)


def test_low_threshold_uses_optimal_assignment():
    # GT 1 overlaps both predictions; GT 2 only the second. Greedy-by-IoU would match
    # (1, b) and leave GT 2 alone; the optimal matching at 0.2 has two pairs.
    truth = np.zeros((1, 12), np.int32)
    truth[0, 0:6] = 1
    truth[0, 6:12] = 2
    pred = np.zeros_like(truth)
    pred[0, 0:2] = 3   # IoU(1, 3) = 2 / 6
    pred[0, 2:9] = 4   # IoU(1, 4) = 4 / 9, IoU(2, 4) = 3 / 10
    (counts,) = match_counts(pred, truth, thresholds=(0.25,))
    assert (counts.tp, counts.fp, counts.fn) == (2, 0, 0)
    assert counts.sum_matched_iou == pytest.approx(2 / 6 + 3 / 10)
    (counts,) = match_counts(pred, truth, thresholds=(0.4,))
    assert (counts.tp, counts.fp, counts.fn) == (1, 1, 1)


def test_tie_at_half_matches_once():
    truth = np.zeros((2, 4), np.uint8)
    truth[:, :] = 1
    pred = np.zeros_like(truth)
    pred[:, :2], pred[:, 2:] = 1, 2  # two exact halves: IoU 0.5 each
    (counts,) = match_counts(pred, truth, thresholds=(0.5,))
    assert (counts.tp, counts.fp, counts.fn) == (1, 1, 0)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("shape", [(15, 15), (6, 9, 6)])
def test_random_against_brute_force(seed, shape):
    rng = np.random.default_rng(seed)
    pred, truth = random_pair(rng, shape, 5)
    _, _, iou = brute_ious(pred, truth)
    thresholds = (0.1, 0.3, *IOU_THRESHOLDS)
    for m in match_counts(pred, truth, thresholds):
        tp, total = brute_matching(iou, m.threshold)
        assert m.tp == tp, m.threshold
        assert m.sum_matched_iou == pytest.approx(total)
        assert m.fp == iou.shape[1] - tp and m.fn == iou.shape[0] - tp


@pytest.mark.parametrize("seed", range(4))
def test_many_objects_against_stardist_dense(seed):
    rng = np.random.default_rng(100 + seed)
    pred, truth = random_pair(rng, (60, 60), 40)
    _, _, iou = brute_ious(pred, truth)
    for m in match_counts(pred, truth, (0.1, 0.25, 0.4, 0.5, 0.7)):
        tp, total = stardist_dense(iou, m.threshold)
        assert m.tp == tp and m.sum_matched_iou == pytest.approx(total)


def test_scores_from_counts_match_definitions():
    rng = np.random.default_rng(7)
    pred, truth = random_pair(rng, (30, 30), 12)
    s = object_matching(pred, truth)
    aps, f1s = [], []
    _, _, iou = brute_ious(pred, truth)
    nt, npred = iou.shape
    for t in IOU_THRESHOLDS:
        tp, _ = stardist_dense(iou, t)
        k = f"{round(t * 100):02d}"
        assert s[f"precision_{k}"] == pytest.approx(tp / npred)
        assert s[f"recall_{k}"] == pytest.approx(tp / nt)
        aps.append(tp / (nt + npred - tp))
        f1s.append(2 * tp / (nt + npred))
        assert s[f"ap_{k}"] == pytest.approx(aps[-1]) and s[f"f1_{k}"] == pytest.approx(f1s[-1])
    assert s["ap_mean"] == pytest.approx(np.mean(aps))
    assert s["f1_mean"] == pytest.approx(np.mean(f1s))


def test_pooled_counts_equal_side_by_side_images():
    rng = np.random.default_rng(3)
    (p1, t1), (p2, t2) = random_pair(rng, (12, 12), 5), random_pair(rng, (12, 12), 5)
    pooled = add_counts(match_counts(p1, t1), match_counts(p2, t2))
    offset = 100  # distinct ids in the second image
    joined = match_counts(np.hstack([p1, np.where(p2 > 0, p2 + offset, 0)]),
                          np.hstack([t1, np.where(t2 > 0, t2 + offset, 0)]))
    for a, b in zip(pooled, joined):
        assert (a.tp, a.fp, a.fn) == (b.tp, b.fp, b.fn)
        assert a.sum_matched_iou == pytest.approx(b.sum_matched_iou)


def test_large_ids_and_signed_dtype():
    pred, truth = square_pair()
    big = np.where(pred > 0, np.uint64(2**40 + 3), np.uint64(0))
    neg = np.where(truth > 0, -7, 0).astype(np.int64)  # label -7 is an object too
    assert object_matching(big, neg)["ap_50"] == 1.0


def test_empty_cases():
    _, truth = square_pair()
    empty = np.zeros_like(truth)
    no_pred = object_matching(empty, truth)
    assert math.isnan(no_pred["precision_50"])
    assert no_pred["recall_50"] == 0 and no_pred["f1_50"] == 0 and no_pred["ap_50"] == 0
    assert no_pred["ap_mean"] == 0 and no_pred["f1_mean"] == 0
    no_truth = object_matching(truth, empty)
    assert math.isnan(no_truth["recall_50"])
    assert no_truth["precision_50"] == 0 and no_truth["ap_50"] == 0 and no_truth["f1_50"] == 0
    both = object_matching(empty, empty)
    for key in ("precision_50", "recall_50", "f1_50", "ap_50", "ap_mean", "f1_mean"):
        assert math.isnan(both[key])


def test_bad_inputs():
    pred, truth = square_pair()
    with pytest.raises(ValueError, match="thresholds"):
        match_counts(pred, truth, thresholds=(0.0,))
    with pytest.raises(TypeError, match="pred"):
        match_counts(pred.astype(float), truth)
    with pytest.raises(ValueError, match="shape"):
        match_counts(pred[:5], truth)
    with pytest.raises(ValueError, match="thresholds"):
        add_counts(match_counts(pred, truth, (0.5,)), match_counts(pred, truth, (0.6,)))
