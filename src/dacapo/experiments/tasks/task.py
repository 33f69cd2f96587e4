"""Base class of all tasks: a predictor, a loss, a post-processor and an evaluator."""

from __future__ import annotations

from abc import ABC

from dacapo.errors import ConfigError

from .evaluators.evaluation_scores import EvaluationScores
from .evaluators.evaluator import Evaluator
from .losses.loss import Loss
from .post_processors.post_processor import PostProcessor, PostProcessorParameters
from .predictors.predictor import Predictor


class Task(ABC):
    """How to learn a segmentation; built from a `TaskConfig`.

    Subclasses set ``predictor``, ``loss``, ``post_processor`` and ``evaluator`` in
    ``__init__``.
    """

    predictor: Predictor
    loss: Loss
    post_processor: PostProcessor
    evaluator: Evaluator

    def __init__(self, task_config) -> None:
        ok, reason = task_config.verify()
        if not ok and not getattr(self, "_allow_invalid_config", False):
            raise ConfigError(f"invalid {type(task_config).__name__} {task_config.name!r}: {reason}")
        self.config = task_config
        self.name = task_config.name

    @property
    def channels(self) -> list[str]:
        """Names of the channels the post-processed output / evaluation sees."""
        return list(self.predictor.channels)

    @property
    def parameters(self) -> list[PostProcessorParameters]:
        """The post-processor's parameter sweep."""
        return list(self.post_processor.enumerate_parameters())

    @property
    def evaluation_scores(self) -> EvaluationScores:
        """An empty score object of the evaluator's kind (lists the criteria)."""
        return self.evaluator.score

    def create_model(self, architecture):
        """Architecture + this task's head (see `Predictor.create_model`)."""
        return self.predictor.create_model(architecture)
