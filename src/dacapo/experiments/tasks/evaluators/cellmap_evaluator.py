"""CellMap evaluator: a per-class segmentation scored the way the CellMap challenge scores
it (`dacapo.ops.cellmap_metrics`).

Output: the per-class post-processor's label image, one channel per class (no channel axis
for one class): a mask (semantic class) or instance ids (instance class). GT: either one
array per class, ``(C, *spatial)`` (class-array groups; instance ids, or a binary mask
whose face-connected components are the objects), or one class-id array (class k where
``gt == k + class_id_offset``: 0 for one-hot tasks, 1 for the distance tasks; objects are
the components of that mask). Scored on `common_roi` of the two (or ``roi`` inside it),
voxel size in world units (nm). Instance classes: matching, F1, Hausdorff and combined
score (`score_instance`) plus the IoU and Dice of the masks; semantic classes: IoU and
Dice (`score_semantic`); then `overall_scores`.

In memory, not blockwise (Hungarian matching and Hausdorff distances need whole objects):
a scored ROI of more than ``MAX_VOXELS`` voxels is an `InputError` naming both arrays
(`dacapo.experiments.tasks.evaluators.evaluate_blockwise` evaluates such a task in memory
too, with this limit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from funlib.geometry import Roi
from funlib.persistence import Array

from dacapo.errors import InputError
from dacapo.io.arrays import open_array, read_array
from dacapo.ops.cellmap_metrics import overall_scores, score_instance, score_semantic
from dacapo.ops.class_segmentation import connected_components

from .binary_segmentation_evaluator import common_roi
from .cellmap_evaluation_scores import CellMapEvaluationScores
from .evaluator import Evaluator

#: the largest scored ROI (voxels) evaluated: the output's C channels (uint64) and the GT
#: are held in memory (2**27 voxels, 5 classes: about 6 GiB)
MAX_VOXELS = 2**27


def class_truth(gt: np.ndarray, index: int, num_classes: int, dims: int, offset: int) -> np.ndarray:
    """Class ``index``'s GT: its array of a ``(C, *spatial)`` stack, or the mask ``gt ==
    index + offset`` of a class-id array (ValueError naming the evaluation array otherwise)."""
    if gt.ndim == dims + 1 and gt.shape[0] == num_classes and num_classes > 1:
        return gt[index]
    if gt.ndim == dims + 1 and gt.shape[0] == 1:
        gt = gt[0]
    if gt.ndim != dims:
        raise ValueError(f"evaluation array: expected {num_classes} class arrays or one "
                         f"class-id array over {dims} spatial dims, got shape {gt.shape}")
    return gt == index + offset


def truth_instances(truth: np.ndarray) -> np.ndarray:
    """Objects of a class GT: its ids, or the components of a binary (0/1) mask."""
    if truth.dtype == bool or truth.size == 0 or int(truth.max()) <= 1:
        return connected_components(truth)
    return truth


class CellMapEvaluator(Evaluator):
    """Scores per-class segmentations of ``classes`` (``instance_classes`` as objects)."""

    def __init__(self, classes: Sequence[str], instance_classes: Sequence[str],
                 class_id_offset: int = 0, max_distance: float | None = None) -> None:
        super().__init__()
        self.classes = list(classes)
        self.instance_classes = [c for c in self.classes if c in set(instance_classes)]
        self.class_id_offset = int(class_id_offset)
        self.max_distance = max_distance

    def evaluate(self, output_array: Array | str | Path, evaluation_array: Array | str | Path,
                 roi: Roi | None = None) -> CellMapEvaluationScores:
        output = open_array(output_array, "output array")
        evaluation = open_array(evaluation_array, "evaluation array")
        scored = common_roi(output, evaluation)
        roi = scored if roi is None else Roi(roi.offset, roi.shape)
        dims, vs = roi.dims, tuple(float(v) for v in output.voxel_size)
        size = int(np.prod(roi.shape / output.voxel_size))
        if size > MAX_VOXELS:
            raise InputError(f"output array {output_array!s} / evaluation array "
                             f"{evaluation_array!s}: the CellMap evaluation holds the scored ROI "
                             f"in memory, {size} voxels > {MAX_VOXELS}; validate on smaller crops")
        seg = read_array(output, roi)
        seg = seg[None] if seg.ndim == dims else seg
        num = len(self.classes)
        if seg.shape[0] != num:
            raise ValueError(f"output array: {seg.shape[0]} channel(s), expected one per class "
                             f"({num}: {self.classes})")
        gt = read_array(evaluation, roi)
        values: dict[str, float] = {}
        per_class = {}
        for k, name in enumerate(self.classes):
            truth = class_truth(gt, k, num, dims, self.class_id_offset)
            semantic = score_semantic(seg[k], truth)
            values |= {f"{name}__iou": semantic.iou, f"{name}__dice": semantic.dice}
            if name in self.instance_classes:
                inst = score_instance(seg[k], truth_instances(truth), vs, self.max_distance)
                per_class[name] = inst
                values |= {f"{name}__{m}": getattr(inst, m) for m in (
                    "f1", "hausdorff_distance", "normalized_hausdorff_distance", "combined_score")}
                values |= {f"{name}__score": inst.combined_score,
                           f"{name}__num_predicted": inst.tp + inst.fp,
                           f"{name}__num_truth": inst.tp + inst.fn}
            else:
                per_class[name] = semantic
                values[f"{name}__score"] = semantic.iou
        values |= {k: v for k, v in overall_scores(per_class).items() if not math.isnan(v)}
        return CellMapEvaluationScores(values, channels=self.classes)

    @property
    def score(self) -> CellMapEvaluationScores:
        return CellMapEvaluationScores(channels=self.classes)
