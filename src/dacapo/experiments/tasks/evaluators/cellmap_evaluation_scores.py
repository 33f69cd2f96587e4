"""Scores of the CellMap evaluator: per class, then overall.

Every class has the same criteria ``<class>__<metric>``: ``score`` (the class's CellMap
score: ``combined_score`` for an instance class, ``iou`` for a semantic one; the criterion
that chooses each class's post-processing), ``iou`` and ``dice`` (of the masks, both kinds),
and for instance classes ``f1``, ``hausdorff_distance`` (nm, mean over objects, unmatched
ones at the cap), ``normalized_hausdorff_distance``, ``combined_score``, ``num_predicted``
and ``num_truth`` (objects; not tracked in ``best.json``); an instance metric of a semantic
class is NaN. Overall: ``overall_instance_score``, ``overall_semantic_score`` and
``overall_score`` (`dacapo.ops.cellmap_metrics.overall_scores`), the main criterion.
"""

from __future__ import annotations

import math

from .evaluation_scores import EvaluationScores, MetricInfo

_UNIT = (0.0, 1.0)
_COUNT = (0.0, math.inf)


class CellMapEvaluationScores(EvaluationScores):
    """Per-class CellMap scores; build with ``(values, channels=class_names)``."""

    MAIN_CRITERION = "overall_score"

    METRICS = {
        "score": MetricInfo(True, _UNIT),
        "iou": MetricInfo(True, _UNIT),
        "dice": MetricInfo(True, _UNIT),
        "f1": MetricInfo(True, _UNIT),
        "hausdorff_distance": MetricInfo(False, _COUNT),
        "normalized_hausdorff_distance": MetricInfo(True, _UNIT),
        "combined_score": MetricInfo(True, _UNIT),
        "num_predicted": MetricInfo(False, _COUNT, store_best=False),
        "num_truth": MetricInfo(False, _COUNT, store_best=False),
    }
    MEAN_METRICS = {
        "overall_score": MetricInfo(True, _UNIT),
        "overall_instance_score": MetricInfo(True, _UNIT),
        "overall_semantic_score": MetricInfo(True, _UNIT),
    }
