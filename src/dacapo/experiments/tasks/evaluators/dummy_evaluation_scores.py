"""Scores of the dummy evaluator."""

from __future__ import annotations

from .evaluation_scores import EvaluationScores, MetricInfo


class DummyEvaluationScores(EvaluationScores):
    """``frizz_level`` (agreement, higher better) and ``blipp_score`` (disagreement)."""

    METRICS = {
        "frizz_level": MetricInfo(True, (0.0, 1.0)),
        "blipp_score": MetricInfo(False, (0.0, 1.0)),
    }
