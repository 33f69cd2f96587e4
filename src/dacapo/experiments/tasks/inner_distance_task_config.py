"""Config of the inner-distance task (distance to the nearest other label)."""

from __future__ import annotations

import attr

from .distance_post_processing import (
    check_post_processing,
    instance_context_field,
    min_seed_distance_field,
    min_size_field,
    post_processor_field,
    seed_h_field,
    seed_thresholds_field,
    thresholds_field,
)
from .inner_distance_task import INNER_DISTANCE_THRESHOLDS, InnerDistanceTask
from .task_config import GTRules, TaskConfig, check_channels, check_non_negative, check_positive


@attr.s
class InnerDistanceTaskConfig(TaskConfig):
    """Predict, per channel, the distance from each labelled voxel to the nearest voxel not
    of its own label (0 outside objects), tanh-normalised: touching instances separate."""

    task_type = InnerDistanceTask

    channels: list[str] = attr.ib(metadata={"help_text": "One name per predicted channel."})
    clip_distance: float = attr.ib(
        metadata={"help_text": "Distances (world units) are clipped at this value in evaluation."}
    )
    tol_distance: float = attr.ib(
        metadata={"help_text": "Tolerance (world units) for the *_with_tolerance metrics."}
    )
    scale_factor: float = attr.ib(
        default=1,
        metadata={"help_text": "Distances are divided by this (world units) before tanh."},
    )
    thresholds: list[float] = thresholds_field(
        INNER_DISTANCE_THRESHOLDS, "0 outside objects; fine steps near 0, where the mask edge is"
    )
    post_processor: str = post_processor_field()
    seed_thresholds: list[float] = seed_thresholds_field()
    seed_h: float | None = seed_h_field()
    min_seed_distance: float = min_seed_distance_field()
    min_size: int = min_size_field()
    instance_context: float | None = instance_context_field()

    def gt_rules(self) -> GTRules:
        """Instance ids (integers, one channel)."""
        return GTRules(integer_labels=True)

    def _problems(self) -> list[str]:
        return (
            check_channels("channels", self.channels)
            + check_positive("clip_distance", self.clip_distance)
            + check_non_negative("tol_distance", self.tol_distance)
            + check_positive("scale_factor", self.scale_factor)
            + check_post_processing(self)
        )
