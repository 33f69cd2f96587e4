"""The object-matching criteria of the instance evaluators (StarDist's F1 and AP at IoU 0.5
and over 0.5:0.95) against a brute-force reference: the instance evaluator, the binary +
instance one per channel and as the mean over channels. (That they reach
validation_scores.csv unchanged: tests/planning/test_collections.py; blockwise ==
in memory for every criterion: test_blockwise_evaluation.py.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
from funlib.persistence import Array

from dacapo.experiments.tasks.evaluators import (
    BinaryInstanceEvaluationScores,
    BinaryInstanceEvaluator,
    InstanceEvaluationScores,
    InstanceEvaluator,
)
from tests.references import blob_labels, brute_object_scores

MATCHING = ["precision", "recall", "f1", "ap50", "map", "f1_50_95", "mean_matched_iou"]


def _pair(shape, seed):
    """GT objects and a prediction that shifts them by a voxel, drops one, merges two and
    renames them: IoUs spread over the thresholds."""
    rng = np.random.default_rng(seed)
    truth = blob_labels(shape, 7, seed, background=0.2)
    pred = np.roll(truth, 1, axis=-1)
    ids = [i for i in np.unique(pred) if i != 0]
    pred[pred == ids[0]] = 0
    pred[pred == ids[1]] = ids[2]
    relabel = rng.permutation(int(pred.max()) + 1) + 10
    relabel[0] = 0
    return relabel[pred].astype(np.uint64), truth


def _same(got: float, want: float) -> bool:
    return (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("shape,seed", [((24, 30), 0), ((24, 30), 1), ((6, 12, 14), 2)])
def test_instance_evaluator_matching_equals_brute_force(shape, seed):
    pred, truth = _pair(shape, seed)
    vs, names = (4,) * len(shape), ["z", "y", "x"][-len(shape):]
    scores = InstanceEvaluator().evaluate(Array(pred, voxel_size=vs, axis_names=names),
                                          Array(truth, voxel_size=vs, axis_names=names))
    want = brute_object_scores(pred, truth)
    assert 0 < want["map"] < want["ap50"] < 1 and want["f1_50_95"] < want["f1"]  # non-trivial
    for name in MATCHING:
        assert _same(scores[name], want[name]), name
    for name in ("ap50", "map", "f1", "f1_50_95"):
        assert InstanceEvaluationScores.higher_is_better(name)
        assert InstanceEvaluationScores.bounds(name) == (0.0, 1.0)


def test_binary_instance_evaluator_matching_per_channel_and_mean():
    (pa, ta), (pb, tb) = _pair((24, 30), 3), _pair((24, 30), 4)
    pb[:] = 0  # channel b predicts nothing: its F1 / AP are 0, its precision NaN
    names = ["c^", "y", "x"]
    evaluator = BinaryInstanceEvaluator(clip_distance=8.0, tol_distance=4.0, channels=["a", "b"])
    scores = evaluator.evaluate(Array(np.stack([pa, pb]), voxel_size=(4, 4), axis_names=names),
                                Array(np.stack([ta, tb]), voxel_size=(4, 4), axis_names=names))
    want = {"a": brute_object_scores(pa, ta), "b": brute_object_scores(pb, tb)}
    assert want["b"]["f1_50_95"] == 0 and math.isnan(want["b"]["precision"])
    for name in MATCHING:
        for c in "ab":
            assert _same(scores[f"{c}__instance_{name}"], want[c][name]), (c, name)
        found = [want[c][name] for c in "ab" if not math.isnan(want[c][name])]
        assert _same(scores[name], float(np.mean(found)) if found else math.nan), name
    assert BinaryInstanceEvaluationScores.higher_is_better("b__instance_f1_50_95")
    assert BinaryInstanceEvaluationScores.higher_is_better("f1_50_95")
