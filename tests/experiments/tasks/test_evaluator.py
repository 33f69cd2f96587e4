"""Best-score tracking of the Evaluator base: per (dataset, parameters, criterion)."""

from __future__ import annotations

import math

from dacapo.experiments.tasks.evaluators import DummyEvaluationScores, DummyEvaluator
from dacapo.experiments.tasks.post_processors import DummyPostProcessorParameters


def scores(frizz: float, blipp: float) -> DummyEvaluationScores:
    return DummyEvaluationScores({"frizz_level": frizz, "blipp_score": blipp})


def test_best_tracking_honours_direction_and_nan() -> None:
    ev = DummyEvaluator()
    p0, p1 = DummyPostProcessorParameters(id=0, min_size=1), DummyPostProcessorParameters(id=1, min_size=2)
    assert ev.best("frizz_level") is None
    ev.store_score(100, "val", p0, scores(0.5, 0.5))
    ev.store_score(100, "val", p1, scores(math.nan, math.nan))  # NaN is stored but never wins
    ev.store_score(200, "val", p0, scores(0.4, 0.3))
    ev.store_score(200, "val", p1, scores(0.7, 0.6))
    ev.store_score(300, "val", p1, scores(math.nan, math.nan))
    ev.store_score(300, "other", p0, scores(0.9, 0.9))

    # higher is better for frizz_level: iteration 200, p1 on "val"
    best = ev.best("frizz_level", "val")
    assert (best.iteration, best.parameters, best.value) == (200, p1, 0.7)
    # lower is better for blipp_score: iteration 200, p0 (0.3)
    best = ev.best("blipp_score", "val")
    assert (best.iteration, best.parameters, best.value) == (200, p0, 0.3)
    # per (dataset, parameters, criterion)
    assert ev.best_scores[("val", p0, "frizz_level")] == (100, 0.5)
    assert ev.best_scores[("val", p1, "frizz_level")] == (200, 0.7)
    assert ev.is_best("val", p1, "frizz_level", 0.7)
    assert not ev.is_best("val", p1, "frizz_level", 0.6)
    assert ev.get_overall_best("val", "blipp_score") == 0.3
    assert ev.get_overall_best_parameters("val", "frizz_level") == p1
    # across datasets
    assert ev.best("frizz_level").dataset == "other"


def test_all_nan_gives_no_best() -> None:
    ev = DummyEvaluator()
    p = DummyPostProcessorParameters(id=0, min_size=1)
    ev.store_score(1, "val", p, scores(math.nan, math.nan))
    assert ev.best("frizz_level") is None
    assert math.isnan(ev.get_overall_best("val", "frizz_level"))
    assert ev.store_score(2, "val", p, scores(0.1, 0.2)) == ["frizz_level", "blipp_score"]
    assert ev.best("frizz_level").iteration == 2
