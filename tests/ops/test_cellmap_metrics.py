"""CellMap challenge scores: hand-computed cases and an independent reference (IoU by loops
over objects, matching by enumerating all permutations, ``scipy``'s directed Hausdorff on
voxel coordinates scaled by the voxel size)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.spatial.distance import directed_hausdorff

from dacapo.ops.cellmap_metrics import (
    InstanceScore,
    SemanticScore,
    combine_instance_crops,
    combine_semantic_crops,
    default_max_distance,
    overall_scores,
    ratio_cutoff,
    score_instance,
    score_semantic,
)
from tests.ops.references import brute_ious, random_pair


def brute_hausdorff(a, b, voxel_size):
    pa = np.argwhere(a) * np.asarray(voxel_size, float)
    pb = np.argwhere(b) * np.asarray(voxel_size, float)
    return max(directed_hausdorff(pa, pb)[0], directed_hausdorff(pb, pa)[0])


def brute_instance(pred, truth, voxel_size, d_max):
    """(tp, fp, fn, f1, distances) with the matching of largest IoU sum (then most pairs)
    over all permutations of the padded IoU matrix, pairs with IoU > 0 only."""
    t_ids, p_ids, iou = brute_ious(pred, truth)
    n = max(len(t_ids), len(p_ids))
    square = np.zeros((n, n))
    square[: len(t_ids), : len(p_ids)] = iou
    best, best_key = [], (-1.0, -1)
    for perm in itertools.permutations(range(n)):
        pairs = [(i, perm[i]) for i in range(n) if square[i, perm[i]] > 0]
        key = (sum(square[i, j] for i, j in pairs), len(pairs))
        if key[0] > best_key[0] + 1e-12 or (abs(key[0] - best_key[0]) <= 1e-12
                                            and key[1] > best_key[1]):
            best, best_key = pairs, key
    tp = len(best)
    fp, fn = len(p_ids) - tp, len(t_ids) - tp
    distances = [min(brute_hausdorff(truth == t_ids[i], pred == p_ids[j], voxel_size), d_max)
                 for i, j in best]
    distances += [d_max] * (fp + fn)
    f1 = 2 * tp / (2 * tp + fp + fn)
    return tp, fp, fn, f1, np.array(distances)


def test_two_squares_shifted_by_one_voxel():
    truth = np.zeros((10, 12), np.uint16)
    truth[2:6, 2:6] = 1
    pred = np.zeros_like(truth)
    pred[3:7, 2:6] = 9  # one voxel along axis 0: 4 nm there
    s = score_instance(pred, truth, voxel_size=(4.0, 2.0))
    norm = 1.01 ** (-4.0 / math.sqrt(4.0**2 + 2.0**2))
    assert (s.tp, s.fp, s.fn, s.f1) == (1, 0, 0, 1.0)
    assert s.hausdorff_distance == pytest.approx(4.0)
    assert s.normalized_hausdorff_distance == pytest.approx(norm)
    assert s.combined_score == pytest.approx(math.sqrt(norm))
    assert s.num_voxels == 120 and not s.skipped


def test_unmatched_objects_at_max_distance():
    truth = np.zeros((10, 12), np.uint16)
    truth[2:6, 2:6] = 1
    truth[8:10, 8:12] = 2  # missed
    pred = np.zeros_like(truth)
    pred[2:6, 2:6] = 3     # exact: HD 0
    pred[0:2, 9:12] = 4    # spurious
    d_max = default_max_distance((1.0, 1.0), truth.shape)
    assert d_max == 5.0
    s = score_instance(pred, truth, voxel_size=(1.0, 1.0))
    assert (s.tp, s.fp, s.fn) == (1, 1, 1) and s.f1 == pytest.approx(0.5)
    assert s.hausdorff_distance == pytest.approx(10.0 / 3)
    norm = (1.0 + 2 * 1.01 ** (-5.0 / math.sqrt(2))) / 3
    assert s.normalized_hausdorff_distance == pytest.approx(norm)
    assert s.combined_score == pytest.approx(math.sqrt(0.5 * norm))


def test_matched_distance_capped():
    truth = np.zeros((4, 40), np.uint8)
    truth[0, :] = 1
    pred = np.zeros_like(truth)
    pred[0, :30] = 1  # IoU 0.75, Hausdorff 10 > D_max = 2
    s = score_instance(pred, truth, voxel_size=(1.0, 1.0))
    assert s.tp == 1 and s.hausdorff_distance == 2.0
    assert score_instance(pred, truth, (1.0, 1.0), max_distance=50.0).hausdorff_distance == 10


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("cap", [0.6, 10.0])  # D_max reached by some pairs / by none
@pytest.mark.parametrize(
    "shape, voxel_size", [((14, 16), (3.0, 1.5)), ((6, 10, 8), (40.0, 8.0, 8.0))]
)
def test_random_against_brute_force(seed, cap, shape, voxel_size):
    rng = np.random.default_rng(seed)
    pred, truth = random_pair(rng, shape, 5)
    d_max = cap * default_max_distance(voxel_size, shape)
    tp, fp, fn, f1, distances = brute_instance(pred, truth, voxel_size, d_max)
    s = score_instance(pred, truth, voxel_size, max_distance=d_max)
    assert (s.tp, s.fp, s.fn) == (tp, fp, fn)
    assert s.f1 == pytest.approx(f1)
    assert s.hausdorff_distance == pytest.approx(distances.mean(), rel=1e-5)
    norm = np.mean(1.01 ** (-distances / np.linalg.norm(voxel_size)))
    assert s.normalized_hausdorff_distance == pytest.approx(norm, rel=1e-6)
    assert s.combined_score == pytest.approx(math.sqrt(f1 * norm), rel=1e-6)


def test_too_many_predictions_score_zero():
    truth = np.zeros((8, 60), np.uint16)
    truth[0:2, 0:4] = 1
    pred = np.zeros_like(truth)
    pred[4, 0:60:2] = np.arange(1, 31)  # 30 objects for 1: ratio 30 <= 10 + 50 e^-0.2
    assert not score_instance(pred, truth, (1.0, 1.0)).skipped
    s = score_instance(pred, truth, (1.0, 1.0), ratio_extra=0.0)  # flat cutoff 10
    assert s.skipped and s.f1 == 0 and s.combined_score == 0
    assert (s.tp, s.fp, s.fn) == (0, 30, 1)
    assert s.hausdorff_distance == default_max_distance((1.0, 1.0), truth.shape)
    assert ratio_cutoff(1000) == pytest.approx(10.0)
    pred[4, 0:60:2] = 0
    pred[4, 0:20:2] = np.arange(1, 11)  # ratio exactly 10: still scored
    assert not score_instance(pred, truth, (1.0, 1.0), ratio_extra=0.0).skipped


def test_empty_cases():
    truth = np.zeros((6, 6), np.uint8)
    truth[1:3, 1:3] = 1
    empty = np.zeros_like(truth)
    both = score_instance(empty, empty, (1.0, 1.0))
    assert (both.f1, both.normalized_hausdorff_distance, both.combined_score) == (1, 1, 1)
    assert both.hausdorff_distance == 0
    for pred, gt in ((empty, truth), (truth, empty)):
        s = score_instance(pred, gt, (1.0, 1.0))
        assert s.f1 == 0 and s.combined_score == 0 and s.hausdorff_distance == 3.0
    sem = score_semantic(empty, empty)
    assert sem.iou == 1 and sem.dice == 1
    assert score_semantic(empty, truth).iou == 0 and score_semantic(truth, empty).dice == 0


def test_semantic_by_hand():
    truth = np.zeros((4, 5), np.uint8)
    truth[0:2, :] = 1          # 10 voxels
    pred = np.zeros((4, 5), np.float32)
    pred[1:3, :] = 0.7         # 10 voxels, 5 shared
    s = score_semantic(pred, truth)
    assert (s.tp, s.fp, s.fn, s.num_voxels) == (5, 5, 5, 20)
    assert s.iou == pytest.approx(1 / 3) and s.dice == pytest.approx(0.5)


def test_combine_crops_and_overall():
    a = InstanceScore(2, 0, 1, 0.8, 10.0, 0.9, 0.6, 100, False)
    b = InstanceScore(1, 1, 0, 2 / 3, 20.0, 0.5, 0.2, 300, False)
    mito = combine_instance_crops([a, b])
    assert (mito.tp, mito.fp, mito.fn, mito.num_voxels) == (3, 1, 1, 400)
    assert mito.f1 == pytest.approx(6 / 8)
    assert mito.hausdorff_distance == pytest.approx(17.5)
    assert mito.normalized_hausdorff_distance == pytest.approx(0.6)
    assert mito.combined_score == pytest.approx(0.3)
    mem = combine_semantic_crops([SemanticScore(1, 1, 1, 0.5, 0.6, 100),
                                  SemanticScore(1, 0, 0, 1.0, 1.0, 100)])
    assert mem.iou == pytest.approx(0.75) and mem.dice == pytest.approx(0.8)
    ves = InstanceScore(0, 0, 0, 1.0, 0.0, 1.0, 1.0, 100, False)
    out = overall_scores({"mito": mito, "ves": ves, "mem": mem})
    assert out["overall_instance_score"] == pytest.approx((0.3 * 400 + 100) / 500)
    assert out["overall_semantic_score"] == pytest.approx(0.75)
    assert out["overall_score"] == pytest.approx(math.sqrt(0.44 * 0.75))
    assert overall_scores({"mem": mem})["overall_score"] == pytest.approx(0.75)
    assert math.isnan(overall_scores({})["overall_score"])
    with pytest.raises(ValueError):
        combine_instance_crops([])


def test_bad_inputs():
    truth = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="voxel size"):
        score_instance(truth, truth, (1.0, 1.0, 1.0))
    with pytest.raises(TypeError, match="pred"):
        score_instance(truth.astype(float), truth, (1.0, 1.0))
