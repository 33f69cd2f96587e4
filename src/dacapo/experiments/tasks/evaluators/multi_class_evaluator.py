"""Multi-class evaluator (one-hot task): per-class Dice, IoU, precision, recall and means.

Output and GT hold class ids 0..C-1 (no channel axis, or a single one); any other id is a
ValueError naming the array. ROI handling as in the binary evaluator (`common_roi`): equal
voxel size required, scored on the smaller ROI when one contains the other. NaN handling
(classes absent from both arrays): see `dacapo.ops.multiclass_metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from funlib.persistence import Array

from dacapo.io.arrays import open_array, read_array
from dacapo.ops.multiclass_metrics import multiclass_metrics

from .binary_segmentation_evaluator import common_roi
from .evaluator import Evaluator
from .multi_class_evaluation_scores import MultiClassEvaluationScores


def class_ids(data: np.ndarray, dims: int, num_classes: int, name: str) -> np.ndarray:
    """Spatial class-id data (a single channel axis is squeezed); ValueError naming ``name``
    for another shape or an id outside 0..num_classes-1."""
    if data.ndim == dims + 1 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != dims:
        raise ValueError(f"{name}: expected class ids over {dims} spatial dims, got shape {data.shape}")
    if data.size and (data.min() < 0 or data.max() >= num_classes):
        raise ValueError(
            f"{name}: class ids in [{data.min()}, {data.max()}], expected 0..{num_classes - 1}"
        )
    return data


class MultiClassEvaluator(Evaluator):
    """Scores a class-id segmentation against class-id GT, keyed by class name."""

    def __init__(self, classes: Sequence[str]) -> None:
        super().__init__()
        self.classes = list(classes)

    def evaluate(
        self, output_array: Array | str | Path, evaluation_array: Array | str | Path
    ) -> MultiClassEvaluationScores:
        output = open_array(output_array, "output array")
        evaluation = open_array(evaluation_array, "evaluation array")
        roi = common_roi(output, evaluation)
        num = len(self.classes)
        test = class_ids(read_array(output, roi), roi.dims, num, "output array")
        truth = class_ids(
            read_array(evaluation, roi), roi.dims, num, "evaluation array"
        )
        return self.scores_from_metrics(*multiclass_metrics(test, truth, num))

    def scores_from_metrics(
        self, per_class: dict[str, np.ndarray], means: dict[str, float]
    ) -> MultiClassEvaluationScores:
        """The score object of per-class metric arrays and their means."""
        values = dict(means)
        for metric, scores in per_class.items():
            for name, value in zip(self.classes, scores):
                values[f"{name}__{metric}"] = float(value)
        return MultiClassEvaluationScores(values, channels=self.classes)

    @property
    def score(self) -> MultiClassEvaluationScores:
        return MultiClassEvaluationScores(channels=self.classes)
