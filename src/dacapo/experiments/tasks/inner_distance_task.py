"""Inner-distance task: distance inside objects -> threshold sweep (binary evaluation) or
seeded watershed instances (binary + instance evaluation); see `distance_post_processing`."""

from __future__ import annotations

from .distance_post_processing import build_post_processing
from .losses import MSELoss
from .predictors import InnerDistancePredictor
from .task import Task

#: Default threshold sweep on tanh-normalised inner distances (0 outside objects, > 0
#: inside): a voxel touching the boundary has tanh(s/2 / scale_factor), small when
#: scale_factor is a few voxels, so the mask edge moves fastest at low thresholds: steps of
#: 0.025-0.05 there, 0.1 above.
INNER_DISTANCE_THRESHOLDS = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)


class InnerDistanceTask(Task):
    """Predicts tanh-normalised inner distances; segments by thresholding them (or, with
    ``post_processor: instances``, by a seeded watershed of them)."""

    def __init__(self, task_config) -> None:
        super().__init__(task_config)
        self.predictor = InnerDistancePredictor(
            channels=task_config.channels, scale_factor=task_config.scale_factor
        )
        self.loss = MSELoss()
        self.post_processor, self.evaluator = build_post_processing(task_config)
