"""Scores of the instance evaluator (definitions in `dacapo.ops.instance_metrics` and
`dacapo.ops.object_matching`)."""

from __future__ import annotations

import math

from .evaluation_scores import EvaluationScores, MetricInfo

_UNIT = (0.0, 1.0)


class InstanceEvaluationScores(EvaluationScores):
    """VOI (bits, GT 0 ignored), CREMI adapted Rand error and IoU matching scores.

    ``voi_split``, ``voi_merge``, ``voi`` and ``adapted_rand_error`` are lower-is-better;
    the object-matching scores (one-to-one, StarDist's definitions) are higher-is-better, all
    in [0, 1]: ``precision``, ``recall``, ``f1`` (F1@0.5), ``ap50`` (AP@0.5 = TP / (TP + FP +
    FN) at IoU >= 0.5) and ``mean_matched_iou`` at IoU 0.5; ``map`` (AP) and ``f1_50_95``
    (F1) averaged over the IoU thresholds 0.5, 0.55, ..., 0.95.
    """

    METRICS = {
        "voi_split": MetricInfo(False, (0.0, math.inf)),
        "voi_merge": MetricInfo(False, (0.0, math.inf)),
        "voi": MetricInfo(False, (0.0, math.inf)),
        "adapted_rand_error": MetricInfo(False, _UNIT),
        "precision": MetricInfo(True, _UNIT),
        "recall": MetricInfo(True, _UNIT),
        "f1": MetricInfo(True, _UNIT),
        "ap50": MetricInfo(True, _UNIT),
        "map": MetricInfo(True, _UNIT),
        "f1_50_95": MetricInfo(True, _UNIT),
        "mean_matched_iou": MetricInfo(True, _UNIT),
    }
