"""Base class of evaluation scores: named criteria with direction, bounds and best-tracking."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar, NamedTuple


class MetricInfo(NamedTuple):
    """How to read one metric: direction, value range and whether to track its best."""

    higher_is_better: bool
    bounds: tuple[float, float]
    store_best: bool = True


class EvaluationScores:
    """Scores of one evaluation, one float per criterion (NaN where undefined).

    Subclasses set ``METRICS`` (metric name -> `MetricInfo`). With ``channels`` given, the
    criteria are ``<channel>__<metric>`` for every channel and metric (plus ``MEAN_METRICS``,
    channel-independent summaries); otherwise the metric names themselves.
    ``getattr(scores, criterion)`` gives a value.
    """

    METRICS: ClassVar[dict[str, MetricInfo]] = {}
    MEAN_METRICS: ClassVar[dict[str, MetricInfo]] = {}

    def __init__(
        self,
        values: Mapping[str, float] | None = None,
        channels: Sequence[str] | None = None,
    ) -> None:
        self.channels = list(channels) if channels is not None else None
        self._values = {c: math.nan for c in self.criteria}
        for key, value in (values or {}).items():
            if key not in self._values:
                raise KeyError(f"{type(self).__name__}: unknown criterion {key!r}")
            self._values[key] = float(value)

    @property
    def criteria(self) -> list[str]:
        if self.channels is None:
            return list(self.METRICS) + list(self.MEAN_METRICS)
        per_channel = [f"{c}__{m}" for c in self.channels for m in self.METRICS]
        return per_channel + list(self.MEAN_METRICS)

    def __getattr__(self, name: str) -> float:
        values = self.__dict__.get("_values")
        if values is not None and name in values:
            return values[name]
        raise AttributeError(f"{type(self).__name__} has no criterion {name!r}")

    def __getitem__(self, criterion: str) -> float:
        return self._values[criterion]

    def to_dict(self) -> dict[str, float]:
        return dict(self._values)

    def __eq__(self, other) -> bool:
        if type(other) is not type(self) or other.criteria != self.criteria:
            return False
        return all(
            a == b or (math.isnan(a) and math.isnan(b))
            for a, b in zip(self._values.values(), other._values.values())
        )

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in self._values.items())
        return f"{type(self).__name__}({shown})"

    @classmethod
    def metric_info(cls, criterion: str) -> MetricInfo:
        metric = criterion.rsplit("__", 1)[-1]
        if metric in cls.MEAN_METRICS:
            return cls.MEAN_METRICS[criterion]
        if metric not in cls.METRICS:
            raise KeyError(f"{cls.__name__}: unknown criterion {criterion!r}")
        return cls.METRICS[metric]

    @classmethod
    def higher_is_better(cls, criterion: str) -> bool:
        return cls.metric_info(criterion).higher_is_better

    @classmethod
    def bounds(cls, criterion: str) -> tuple[float, float]:
        return cls.metric_info(criterion).bounds

    @classmethod
    def store_best(cls, criterion: str) -> bool:
        return cls.metric_info(criterion).store_best
