"""One-hot task: class probabilities -> argmax -> multi-class evaluation (or, with
``instance_classes``, per-class segmentation -> CellMap evaluation)."""

from __future__ import annotations

from .evaluators import MultiClassEvaluator
from .losses import CrossEntropyDiceLoss, WeightedCrossEntropyLoss
from .per_class_post_processing import one_hot_per_class
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
        self.loss = (CrossEntropyDiceLoss(task_config.dice_weight) if task_config.dice_weight
                     else WeightedCrossEntropyLoss())
        if task_config.instance_classes is not None:  # per class, CellMap scores
            self.post_processor, self.evaluator = one_hot_per_class(task_config)
        else:
            self.post_processor = ArgmaxPostProcessor()
            self.evaluator = MultiClassEvaluator(classes=task_config.classes)
