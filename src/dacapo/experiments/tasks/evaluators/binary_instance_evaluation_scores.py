"""Scores of the binary + instance evaluator: the mask's binary metrics and the instances'.

Criteria: ``<channel>__<metric>`` for the 21 binary metrics of the foreground (label != 0)
per channel (as `BinarySegmentationEvaluationScores`), and the instance metrics of
`InstanceEvaluationScores` (``voi``, ``voi_split``, ``voi_merge``, ``adapted_rand_error``,
``precision``, ``recall``, ``f1``, ``ap50``, ``map``, ``f1_50_95``, ``mean_matched_iou``) unprefixed: with
one channel they are that channel's, with several the mean over channels, and each channel's
own are ``<channel>__instance_<metric>``. So no name collides (the binary ``<c>__voi`` is
the VOI of the two foreground masks, ``voi`` the instances' VOI). Means over channels leave
out channels where the metric is NaN. The main criterion is ``f1`` (`MAIN_CRITERION`).
"""

from __future__ import annotations

from .binary_segmentation_evaluation_scores import BinarySegmentationEvaluationScores
from .evaluation_scores import EvaluationScores, MetricInfo
from .instance_evaluation_scores import InstanceEvaluationScores

#: prefix of the per-channel instance metrics (``<channel>__instance_<metric>``)
INSTANCE_PREFIX = "instance_"


class BinaryInstanceEvaluationScores(EvaluationScores):
    """Binary metrics per channel + instance metrics; build with ``(values, channels=[...])``."""

    METRICS = BinarySegmentationEvaluationScores.METRICS
    INSTANCE_METRICS = InstanceEvaluationScores.METRICS
    #: chooses checkpoint and parameters (`dacapo.runs.scores.main_criterion`): VOI and ARAND
    #: ignore GT label 0, so they never see objects made of background noise and favour the
    #: lowest mask threshold (measured on lm_nuclei: Dice 0.57 at the best VOI); F1 of the
    #: IoU >= 0.5 matching counts them (same choice as ap50 = F1 / (2 - F1)).
    MAIN_CRITERION = "f1"

    @property
    def criteria(self) -> list[str]:
        channels = self.channels or []
        binary = [f"{c}__{m}" for c in channels for m in self.METRICS]
        per_channel = ([f"{c}__{INSTANCE_PREFIX}{m}" for c in channels for m in self.INSTANCE_METRICS]
                       if len(channels) > 1 else [])
        return binary + per_channel + list(self.INSTANCE_METRICS)

    @classmethod
    def metric_info(cls, criterion: str) -> MetricInfo:
        if "__" not in criterion:
            if criterion in cls.INSTANCE_METRICS:
                return cls.INSTANCE_METRICS[criterion]
            raise KeyError(f"{cls.__name__}: unknown criterion {criterion!r}")
        metric = criterion.rsplit("__", 1)[-1]
        if metric.startswith(INSTANCE_PREFIX) and metric[len(INSTANCE_PREFIX):] in cls.INSTANCE_METRICS:
            return cls.INSTANCE_METRICS[metric[len(INSTANCE_PREFIX):]]
        if metric in cls.METRICS:
            return cls.METRICS[metric]
        raise KeyError(f"{cls.__name__}: unknown criterion {criterion!r}")
