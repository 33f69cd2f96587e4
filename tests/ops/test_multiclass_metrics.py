"""Multi-class metrics and evaluator against per-class brute-force counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from funlib.persistence import Array

from dacapo.experiments.tasks.evaluators import MultiClassEvaluationScores, MultiClassEvaluator
from dacapo.ops.multiclass_metrics import confusion_matrix, multiclass_metrics


def _brute(test, truth, c):
    tp = sum(1 for a, b in zip(test.ravel(), truth.ravel()) if a == c and b == c)
    fp = sum(1 for a, b in zip(test.ravel(), truth.ravel()) if a == c and b != c)
    fn = sum(1 for a, b in zip(test.ravel(), truth.ravel()) if a != c and b == c)
    div = lambda x, y: x / y if y else math.nan  # noqa: E731
    return {
        "dice": div(2 * tp, 2 * tp + fp + fn),
        "iou": div(tp, tp + fp + fn),
        "precision": div(tp, tp + fp),
        "recall": div(tp, tp + fn),
    }


def _close(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)


@pytest.mark.parametrize("seed", range(4))
def test_random_vs_brute_force(seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, (6, 7))  # class 3 absent from truth
    test = rng.integers(0, 4, (6, 7))
    test[test == 3] = 2 if seed % 2 else 3  # class 3 sometimes absent from both
    per_class, means = multiclass_metrics(test, truth, 5)  # class 4 absent from both
    for c in range(5):
        ref = _brute(test, truth, c)
        for metric, value in ref.items():
            assert _close(per_class[metric][c], value), (c, metric)
    present = [c for c in range(5) if (test == c).any() or (truth == c).any()]
    assert means["mean_dice"] == pytest.approx(np.mean([_brute(test, truth, c)["dice"] for c in present]))
    assert means["mean_iou"] == pytest.approx(np.mean([_brute(test, truth, c)["iou"] for c in present]))


def test_confusion_matrix_and_errors():
    truth = np.array([0, 0, 1, 1, 2])
    test = np.array([0, 1, 1, 1, 0])
    cm = confusion_matrix(test, truth, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    with pytest.raises(ValueError, match="truth"):
        confusion_matrix(test, np.array([0, 0, 1, 1, 3]), 3)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(test, truth[:4], 3)


def test_nan_handling():
    truth = np.zeros((3, 3), int)
    test = np.zeros((3, 3), int)
    test[0, 0] = 1
    per_class, means = multiclass_metrics(test, truth, 3)
    # class 1 only predicted: dice 0, recall NaN; class 2 absent from both: NaN everywhere
    assert per_class["dice"][1] == 0.0 and math.isnan(per_class["recall"][1])
    assert all(math.isnan(per_class[m][2]) for m in per_class)
    assert means["mean_dice"] == pytest.approx((2 * 8 / 17 + 0) / 2)
    _, means = multiclass_metrics(np.zeros((0,), int), np.zeros((0,), int), 2)
    assert math.isnan(means["mean_dice"])


def _array(data, offset=(0, 0), voxel_size=(4, 4)):
    return Array(data, offset=offset, voxel_size=voxel_size)


def test_evaluator_scores_and_criteria():
    truth = np.array([[0, 0, 1, 1], [0, 2, 2, 1]], np.uint8)
    test = np.array([[0, 1, 1, 1], [0, 2, 0, 1]], np.uint8)
    evaluator = MultiClassEvaluator(["bg", "mito", "er"])
    scores = evaluator.evaluate(_array(test), _array(truth[None]))
    assert isinstance(scores, MultiClassEvaluationScores)
    assert scores.criteria == [
        f"{c}__{m}" for c in ("bg", "mito", "er") for m in ("dice", "iou", "precision", "recall")
    ] + ["mean_dice", "mean_iou"]
    assert scores.mito__dice == pytest.approx(2 * 3 / (4 + 3))
    assert scores.er__recall == pytest.approx(0.5)
    assert scores.mean_iou == pytest.approx(np.mean([2 / 4, 3 / 4, 1 / 2]))
    assert evaluator.higher_is_better("mean_dice") and evaluator.higher_is_better("er__iou")
    assert math.isnan(evaluator.score.mean_dice)


def test_evaluator_roi_and_errors():
    truth = np.zeros((6, 6), np.uint8)
    truth[2:4, 2:4] = 1
    test = truth[1:5, 1:5].copy()
    evaluator = MultiClassEvaluator(["bg", "fg"])
    scores = evaluator.evaluate(_array(test, offset=(4, 4)), _array(truth))
    assert scores.fg__dice == 1.0 and scores.mean_dice == 1.0
    with pytest.raises(ValueError, match="voxel size"):
        evaluator.evaluate(_array(test, voxel_size=(2, 2)), _array(truth))
    with pytest.raises(ValueError, match="neither contains"):
        evaluator.evaluate(_array(truth, offset=(8, 8)), _array(truth))
    with pytest.raises(ValueError, match="output array"):
        evaluator.evaluate(_array(test + 2, offset=(4, 4)), _array(truth))
