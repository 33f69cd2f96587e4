"""Scores of the binary segmentation evaluator: 21 metrics per channel (`dacapo.ops.binary_metrics`).

Criteria are ``<channel>__<metric>``; see `dacapo.ops.binary_metrics` for the definitions
and the empty-mask conventions (NaN where undefined). Distances are in world units.
"""

from __future__ import annotations

import math

from .evaluation_scores import EvaluationScores, MetricInfo

_INF = math.inf
_UNIT = (0.0, 1.0)
_DIST = (0.0, _INF)


class BinarySegmentationEvaluationScores(EvaluationScores):
    """Per-channel binary metrics; build with ``(values, channels=[...])``."""

    METRICS = {
        "dice": MetricInfo(True, _UNIT),
        "jaccard": MetricInfo(True, _UNIT),
        "hausdorff": MetricInfo(False, _DIST),
        "false_negative_rate": MetricInfo(False, _UNIT),
        "false_negative_rate_with_tolerance": MetricInfo(False, _UNIT),
        "false_discovery_rate": MetricInfo(False, _UNIT),
        "false_positive_rate": MetricInfo(False, _UNIT),
        "false_positive_rate_with_tolerance": MetricInfo(False, _UNIT),
        "precision": MetricInfo(True, _UNIT),
        "recall": MetricInfo(True, _UNIT),
        "f1_score": MetricInfo(True, _UNIT),
        "precision_with_tolerance": MetricInfo(True, _UNIT),
        "recall_with_tolerance": MetricInfo(True, _UNIT),
        "f1_score_with_tolerance": MetricInfo(True, _UNIT),
        # VOI of two 2-segment partitions: H(S|T) + H(T|S) <= 2 bits
        "voi": MetricInfo(False, (0.0, 2.0)),
        "mean_false_positive_distance": MetricInfo(False, _DIST),
        "mean_false_negative_distance": MetricInfo(False, _DIST),
        "mean_false_distance": MetricInfo(False, _DIST),
        "mean_false_positive_distance_clipped": MetricInfo(False, _DIST),
        "mean_false_negative_distance_clipped": MetricInfo(False, _DIST),
        "mean_false_distance_clipped": MetricInfo(False, _DIST),
    }
