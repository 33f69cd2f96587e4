"""Inner-distance task: distance inside objects -> threshold sweep -> binary evaluation."""

from __future__ import annotations

from .evaluators import BinarySegmentationEvaluator
from .losses import MSELoss
from .post_processors import ThresholdPostProcessor
from .predictors import InnerDistancePredictor
from .task import Task

#: Thresholds on tanh-normalised inner distances (0 outside objects, > 0 inside).
INNER_DISTANCE_THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.5)


class InnerDistanceTask(Task):
    """Predicts tanh-normalised inner distances; segments by thresholding them."""

    def __init__(self, task_config) -> None:
        super().__init__(task_config)
        self.predictor = InnerDistancePredictor(
            channels=task_config.channels, scale_factor=task_config.scale_factor
        )
        self.loss = MSELoss()
        self.post_processor = ThresholdPostProcessor(thresholds=INNER_DISTANCE_THRESHOLDS)
        self.evaluator = BinarySegmentationEvaluator(
            clip_distance=task_config.clip_distance,
            tol_distance=task_config.tol_distance,
            channels=task_config.channels,
        )
