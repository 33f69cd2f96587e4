"""Scores of the multi-class evaluator: per-class Dice, IoU, precision, recall + means.

Criteria are ``<class>__dice``, ``<class>__iou``, ``<class>__precision``,
``<class>__recall`` and ``mean_dice``, ``mean_iou`` (means over the classes present in the
test or the truth; see `dacapo.ops.multiclass_metrics` for the NaN conventions).
"""

from __future__ import annotations

from .evaluation_scores import EvaluationScores, MetricInfo

_UNIT = (0.0, 1.0)


class MultiClassEvaluationScores(EvaluationScores):
    """Per-class scores; build with ``(values, channels=class_names)``."""

    METRICS = {
        "dice": MetricInfo(True, _UNIT),
        "iou": MetricInfo(True, _UNIT),
        "precision": MetricInfo(True, _UNIT),
        "recall": MetricInfo(True, _UNIT),
    }
    MEAN_METRICS = {
        "mean_dice": MetricInfo(True, _UNIT),
        "mean_iou": MetricInfo(True, _UNIT),
    }
