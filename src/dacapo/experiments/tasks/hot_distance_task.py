"""Hot-distance task: binary + distance prediction, thresholded distances, binary evaluation."""

from __future__ import annotations

from .distance_task import DISTANCE_THRESHOLDS
from .evaluators import BinarySegmentationEvaluator
from .losses import HotDistanceLoss
from .post_processors import ThresholdPostProcessor
from .predictors import HotDistancePredictor
from .task import Task


class HotDistanceTask(Task):
    """Combines binary ("hot") and distance prediction.

    The model outputs 2C channels; post-processing thresholds the C distance channels
    (the second half), so post-processing and evaluation see C channels.
    """

    def __init__(self, task_config) -> None:
        super().__init__(task_config)
        channels = list(task_config.channels)
        self.predictor = HotDistancePredictor(
            channels=channels,
            scale_factor=task_config.scale_factor,
            mask_distances=task_config.mask_distances,
            kernel_size=task_config.kernel_size,
        )
        self.loss = HotDistanceLoss()
        self.post_processor = ThresholdPostProcessor(
            thresholds=DISTANCE_THRESHOLDS, channel_offset=len(channels), num_channels=len(channels)
        )
        self.evaluator = BinarySegmentationEvaluator(
            clip_distance=task_config.clip_distance,
            tol_distance=task_config.tol_distance,
            channels=channels,
        )
