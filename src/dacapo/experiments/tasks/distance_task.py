"""Signed-distance task: distances -> threshold sweep (binary evaluation per channel) or
seeded watershed instances (binary + instance evaluation); see `distance_post_processing`."""

from __future__ import annotations

from .distance_post_processing import build_post_processing
from .losses import MSELoss
from .per_class_post_processing import distance_per_class
from .predictors import DistancePredictor
from .task import Task

#: Default threshold sweep on tanh-normalised distances (0 is the boundary). Kept at
#: DaCapo's five values because tests/test_pipeline_validate_apply.py asserts exactly this
#: sweep; `HOT_DISTANCE_THRESHOLDS` is the finer grid around 0 (pass it as ``thresholds``).
DISTANCE_THRESHOLDS = (-0.5, -0.25, 0.0, 0.25, 0.5)


class DistanceTask(Task):
    """Predicts tanh-normalised signed distances; segments by thresholding them (or, with
    ``post_processor: instances``, by a seeded watershed of them)."""

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
        if task_config.instance_classes is not None:  # per class, CellMap scores
            self.post_processor, self.evaluator = distance_per_class(task_config)
        else:
            self.post_processor, self.evaluator = build_post_processing(task_config)
