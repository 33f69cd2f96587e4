"""Evaluators: score segmentations against ground truth; track the best parameters."""

from .binary_instance_evaluation_scores import BinaryInstanceEvaluationScores
from .binary_instance_evaluator import BinaryInstanceEvaluator
from .binary_segmentation_evaluation_scores import BinarySegmentationEvaluationScores
from .binary_segmentation_evaluator import BinarySegmentationEvaluator
from .blockwise import evaluate_blockwise
from .cellmap_evaluation_scores import CellMapEvaluationScores
from .cellmap_evaluator import CellMapEvaluator
from .dummy_evaluation_scores import DummyEvaluationScores
from .dummy_evaluator import DummyEvaluator
from .evaluation_scores import EvaluationScores, MetricInfo
from .evaluator import BestResult, BestScore, Evaluator
from .instance_evaluation_scores import InstanceEvaluationScores
from .instance_evaluator import InstanceEvaluator
from .multi_class_evaluation_scores import MultiClassEvaluationScores
from .multi_class_evaluator import MultiClassEvaluator

__all__ = [
    "BestResult",
    "BestScore",
    "BinaryInstanceEvaluationScores",
    "BinaryInstanceEvaluator",
    "BinarySegmentationEvaluationScores",
    "BinarySegmentationEvaluator",
    "CellMapEvaluationScores",
    "CellMapEvaluator",
    "DummyEvaluationScores",
    "DummyEvaluator",
    "EvaluationScores",
    "Evaluator",
    "InstanceEvaluationScores",
    "InstanceEvaluator",
    "MetricInfo",
    "MultiClassEvaluationScores",
    "MultiClassEvaluator",
    "evaluate_blockwise",
]
