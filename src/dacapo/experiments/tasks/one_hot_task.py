"""One-hot task: class probabilities -> argmax -> multi-class evaluation."""

from __future__ import annotations

from .evaluators import MultiClassEvaluator
from .losses import WeightedCrossEntropyLoss
from .post_processors import ArgmaxPostProcessor
from .predictors import OneHotPredictor
from .task import Task


class OneHotTask(Task):
    """Predicts one probability per class; segments by argmax."""

    def __init__(self, task_config) -> None:
        super().__init__(task_config)
        self.predictor = OneHotPredictor(
            classes=task_config.classes, kernel_size=task_config.kernel_size,
            balance=task_config.balance_classes, clipmin=task_config.clipmin,
            clipmax=task_config.clipmax,
        )
        self.loss = WeightedCrossEntropyLoss()
        self.post_processor = ArgmaxPostProcessor()
        self.evaluator = MultiClassEvaluator(classes=task_config.classes)
