"""Base class of evaluators, with best-score tracking across iterations and parameters."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Hashable
from pathlib import Path
from typing import NamedTuple

from funlib.persistence import Array

from .evaluation_scores import EvaluationScores


class BestScore(NamedTuple):
    iteration: int
    value: float


class BestResult(NamedTuple):
    dataset: str
    iteration: int
    parameters: Hashable
    value: float


class Evaluator(ABC):
    """Scores a segmentation against ground truth and remembers the best results.

    Best tracking is keyed by (dataset, parameters, criterion); a NaN score never wins.
    """

    def __init__(self) -> None:
        self.best_scores: dict[tuple[str, Hashable, str], BestScore] = {}

    @abstractmethod
    def evaluate(self, output_array: Array | str | Path, evaluation_array: Array | str | Path) -> EvaluationScores:
        """Scores of ``output_array`` (segmentation) against ``evaluation_array`` (GT)."""

    @property
    @abstractmethod
    def score(self) -> EvaluationScores:
        """An empty score object (NaN everywhere) listing the criteria."""

    @property
    def criteria(self) -> list[str]:
        return self.score.criteria

    def higher_is_better(self, criterion: str) -> bool:
        return self.score.higher_is_better(criterion)

    def compare(self, score_1: float, score_2: float, criterion: str) -> bool:
        """True if ``score_1`` is strictly better than ``score_2`` (NaN is never better)."""
        if math.isnan(score_1):
            return False
        if math.isnan(score_2):
            return True
        if self.higher_is_better(criterion):
            return score_1 > score_2
        return score_1 < score_2

    def store_score(
        self,
        iteration: int,
        dataset: str,
        parameters: Hashable,
        scores: EvaluationScores,
    ) -> list[str]:
        """Update the best scores with one evaluation; returns the criteria it improved."""
        improved = []
        for criterion in scores.criteria:
            if not scores.store_best(criterion):
                continue
            value = scores[criterion]
            key = (dataset, parameters, criterion)
            best = self.best_scores.get(key)
            if best is None or self.compare(value, best.value, criterion):
                self.best_scores[key] = BestScore(iteration, value)
                if not math.isnan(value):
                    improved.append(criterion)
        return improved

    def is_best(self, dataset: str, parameters: Hashable, criterion: str, score: float) -> bool:
        """Whether ``score`` equals the best stored value of (dataset, parameters, criterion)."""
        best = self.best_scores.get((dataset, parameters, criterion))
        if best is None or math.isnan(score) or math.isnan(best.value):
            return False
        return score == best.value

    def best(self, criterion: str, dataset: str | None = None) -> BestResult | None:
        """The best (dataset, iteration, parameters, value) for ``criterion``; None if no
        finite score was stored. ``dataset`` restricts the search to one dataset."""
        winner: BestResult | None = None
        for (ds, params, crit), best in self.best_scores.items():
            if crit != criterion or (dataset is not None and ds != dataset):
                continue
            if math.isnan(best.value):
                continue
            if winner is None or self.compare(best.value, winner.value, criterion):
                winner = BestResult(ds, best.iteration, params, best.value)
        return winner

    def get_overall_best(self, dataset: str, criterion: str) -> float:
        result = self.best(criterion, dataset)
        return math.nan if result is None else result.value

    def get_overall_best_parameters(self, dataset: str, criterion: str):
        result = self.best(criterion, dataset)
        return None if result is None else result.parameters
