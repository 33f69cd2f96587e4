"""Signed-distance task: distances -> threshold sweep -> binary evaluation per channel."""

from __future__ import annotations

from .evaluators import BinarySegmentationEvaluator
from .losses import MSELoss
from .post_processors import ThresholdPostProcessor
from .predictors import DistancePredictor
from .task import Task

#: Thresholds on tanh-normalised distances (0 is the boundary).
DISTANCE_THRESHOLDS = (-0.5, -0.25, 0.0, 0.25, 0.5)


class DistanceTask(Task):
    """Predicts tanh-normalised signed distances; segments by thresholding them."""

    def __init__(self, task_config) -> None:
        super().__init__(task_config)
        self.predictor = DistancePredictor(
            channels=task_config.channels,
            scale_factor=task_config.scale_factor,
            mask_distances=task_config.mask_distances,
            clipmin=task_config.clipmin,
            clipmax=task_config.clipmax,
        )
        self.loss = MSELoss()
        self.post_processor = ThresholdPostProcessor(thresholds=DISTANCE_THRESHOLDS)
        self.evaluator = BinarySegmentationEvaluator(
            clip_distance=task_config.clip_distance,
            tol_distance=task_config.tol_distance,
            channels=task_config.channels,
        )
