"""Config of the hot-distance task (binary inside channels + signed distances)."""

from __future__ import annotations

import attr

from .hot_distance_task import HotDistanceTask
from .task_config import (
    GTRules,
    TaskConfig,
    check_channels,
    check_kernel_size,
    check_non_negative,
    check_positive,
)


@attr.s
class HotDistanceTaskConfig(TaskConfig):
    """Predict 2C channels: C binary "inside" channels (BCE on logits) followed by C
    tanh-normalised signed-distance channels; segments by thresholding the distances."""

    task_type = HotDistanceTask

    channels: list[str] = attr.ib(metadata={"help_text": "One name per predicted class."})
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
        metadata={"help_text": "Zero the weight where the true distance is unknowable."},
    )
    kernel_size: int | None = attr.ib(
        default=None,
        metadata={"help_text": "Kernel size of the head convolution (odd; default 1)."},
    )

    def gt_rules(self) -> GTRules:
        """One GT array per channel, or class ids ``0..len(channels)`` in one array."""
        return GTRules(num_channels=len(self.channels), channel_names=self.channels)

    def _problems(self) -> list[str]:
        return (
            check_channels("channels", self.channels)
            + check_positive("clip_distance", self.clip_distance)
            + check_non_negative("tol_distance", self.tol_distance)
            + check_positive("scale_factor", self.scale_factor)
            + check_kernel_size("kernel_size", self.kernel_size)
        )
