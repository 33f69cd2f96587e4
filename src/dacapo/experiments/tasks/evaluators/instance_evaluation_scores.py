"""Scores of the instance evaluator (definitions in `dacapo.ops.instance_metrics`)."""

from __future__ import annotations

import math

from .evaluation_scores import EvaluationScores, MetricInfo

_UNIT = (0.0, 1.0)


class InstanceEvaluationScores(EvaluationScores):
    """VOI (bits, GT 0 ignored), CREMI adapted Rand error and IoU matching scores.

    ``voi_split``, ``voi_merge``, ``voi`` and ``adapted_rand_error`` are lower-is-better;
    ``precision``, ``recall``, ``f1``, ``ap50``, ``map`` and ``mean_matched_iou`` (IoU
    matching, one-to-one) are higher-is-better, all in [0, 1].
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
        "mean_matched_iou": MetricInfo(True, _UNIT),
    }
