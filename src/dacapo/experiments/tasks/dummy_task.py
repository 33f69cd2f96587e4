"""The dummy task: deterministic parts for testing the machinery."""

from __future__ import annotations

from .evaluators import DummyEvaluator
from .losses import DummyLoss
from .post_processors import DummyPostProcessor
from .predictors import DummyPredictor
from .task import Task


class DummyTask(Task):
    """A task for tests; every part is deterministic."""

    _allow_invalid_config = True

    def __init__(self, task_config) -> None:
        if task_config.problems():
            raise ValueError(f"invalid DummyTaskConfig: {'; '.join(task_config.problems())}")
        super().__init__(task_config)
        self.predictor = DummyPredictor(task_config.embedding_dims)
        self.loss = DummyLoss()
        self.post_processor = DummyPostProcessor(task_config.detection_threshold)
        self.evaluator = DummyEvaluator()
