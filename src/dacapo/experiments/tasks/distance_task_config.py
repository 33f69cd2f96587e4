"""Config of the signed-distance task (semantic masks from tanh-normalised distances)."""

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
from .distance_task import DISTANCE_THRESHOLDS, DistanceTask
from .per_class_post_processing import (
    check_per_class,
    instance_classes_field,
    instance_min_sizes_field,
)
from .task_config import (
    GTRules,
    TaskConfig,
    check_channels,
    check_clip_bounds,
    check_non_negative,
    check_positive,
)


@attr.s
class DistanceTaskConfig(TaskConfig):
    """Predict, per channel, the signed distance to the object boundary.

    Target ``tanh(d / scale_factor)`` (d in world units, + inside); the segmentation is a
    threshold of the prediction. Distances give a denser signal than affinities: one wrong
    voxel cannot merge two distant objects.
    """

    task_type = DistanceTask

    channels: list[str] = attr.ib(
        metadata={"help_text": "One name per predicted class/channel, e.g. ['mito', 'nucleus']."}
    )
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
    mask_distances: bool = attr.ib(
        default=False,
        metadata={
            "help_text": "Zero the weight where the true distance is unknowable "
            "(closer to the crop/mask edge than the distance the target claims)."
        },
    )
    clipmin: float = attr.ib(
        default=0.05, metadata={"help_text": "Lower clip of class fractions for balancing."}
    )
    clipmax: float = attr.ib(
        default=0.95, metadata={"help_text": "Upper clip of class fractions for balancing."}
    )
    thresholds: list[float] = thresholds_field(DISTANCE_THRESHOLDS, "0 is the boundary")
    post_processor: str = post_processor_field()
    seed_thresholds: list[float] = seed_thresholds_field()
    seed_h: float | None = seed_h_field()
    min_seed_distance: float = min_seed_distance_field()
    min_size: int = min_size_field()
    instance_context: float | None = instance_context_field()
    instance_classes: list[str] | None = instance_classes_field()
    instance_min_sizes: list[int] = instance_min_sizes_field()

    def gt_rules(self) -> GTRules:
        """One GT array per channel, or class ids ``0..len(channels)`` in one array; integer
        instance ids with ``post_processor: instances``."""
        return GTRules(num_channels=len(self.channels), channel_names=self.channels,
                       integer_labels=self.post_processor == "instances")

    def _problems(self) -> list[str]:
        return (
            check_channels("channels", self.channels)
            + check_positive("clip_distance", self.clip_distance)
            + check_non_negative("tol_distance", self.tol_distance)
            + check_positive("scale_factor", self.scale_factor)
            + check_clip_bounds("clipmin", self.clipmin, "clipmax", self.clipmax)
            + check_post_processing(self)
            + check_per_class(self, "channels")
        )
