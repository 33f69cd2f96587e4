"""Instance evaluator: a label volume against instance ground truth.

Both arrays may be funlib `Array`s or zarr paths. The ground truth may carry a singleton
channel axis. Voxel sizes must agree (ValueError otherwise); when the ROIs differ, the
evaluation runs on their intersection (ValueError if it is empty). All metrics come from
one sparse contingency table (`instance_scores`): VOI and adapted Rand error of
`dacapo.ops.instance_metrics` (GT label 0 ignored), the object matching of
`dacapo.ops.object_matching` (StarDist's F1 and AP at IoU thresholds).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from funlib.geometry import Roi
from funlib.persistence import Array

from dacapo.io.arrays import open_array, read_array
from dacapo.ops.instance_metrics import (
    Contingency,
    adapted_rand_error,
    check_labels,
    contingency_table,
    variation_of_information,
)
from dacapo.ops.object_matching import match_counts_from_table, scores_from_counts

from .evaluator import Evaluator
from .instance_evaluation_scores import InstanceEvaluationScores


def instance_scores(table: Contingency) -> dict[str, float]:
    """The criteria of `InstanceEvaluationScores` from a contingency table (GT rows).

    ``precision``, ``recall``, ``f1``, ``ap50`` and ``mean_matched_iou`` are those of the
    one-to-one matching at IoU >= 0.5; ``map`` and ``f1_50_95`` the means of AP and F1 over
    IoU 0.5, 0.55, ..., 0.95 (`dacapo.ops.object_matching.scores_from_counts`: ``ap_mean``,
    ``f1_mean``), AP = TP / (TP + FP + FN).
    """
    split, merge = variation_of_information(table)
    m = scores_from_counts(match_counts_from_table(table))
    return {
        "voi_split": split, "voi_merge": merge, "voi": split + merge,
        "adapted_rand_error": adapted_rand_error(table),
        "precision": m["precision_50"], "recall": m["recall_50"], "f1": m["f1_50"],
        "ap50": m["ap_50"], "map": m["ap_mean"], "f1_50_95": m["f1_mean"],
        "mean_matched_iou": m["mean_matched_iou_50"],
    }


def label_scores(seg: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """`instance_scores` of integer label arrays ``seg`` against ``truth`` (same shape)."""
    check_labels(seg, "output_array")
    check_labels(truth, "evaluation_array")
    return instance_scores(contingency_table(seg, truth))


def spatial_labels(data: np.ndarray, dims: int, name: str) -> np.ndarray:
    """``data`` without singleton leading (channel) axes; ValueError if more remain."""
    while data.ndim > dims and data.shape[0] == 1:
        data = data[0]
    if data.ndim != dims:
        raise ValueError(
            f"{name}: expected a label array with {dims} spatial dims (optionally one "
            f"singleton channel), got shape {data.shape}"
        )
    return data


def instance_roi(output: Array, truth: Array) -> Roi:
    """The ROI scored: the intersection of both arrays' ROIs (ValueError on a voxel size
    mismatch or disjoint ROIs)."""
    if output.voxel_size != truth.voxel_size:
        raise ValueError(
            f"output_array voxel size {output.voxel_size} != evaluation_array voxel "
            f"size {truth.voxel_size}"
        )
    roi = output.roi.intersect(truth.roi)
    if roi.empty:
        raise ValueError(
            f"output_array ROI {output.roi} and evaluation_array ROI {truth.roi} "
            "do not overlap"
        )
    return roi


class InstanceEvaluator(Evaluator):
    """Scores an instance segmentation: VOI split/merge, adapted Rand error, object matching
    (F1 and AP at IoU 0.5 and over 0.5:0.95)."""

    def evaluate(
        self, output_array: Array | str | Path, evaluation_array: Array | str | Path
    ) -> InstanceEvaluationScores:
        output = open_array(output_array, "output_array")
        truth = open_array(evaluation_array, "evaluation_array")
        roi = instance_roi(output, truth)
        dims = output.voxel_size.dims
        seg = spatial_labels(read_array(output, roi), dims, "output_array")
        gt = spatial_labels(read_array(truth, roi), dims, "evaluation_array")
        if seg.shape != gt.shape:
            raise ValueError(
                f"output_array shape {seg.shape} != evaluation_array shape {gt.shape} "
                f"on ROI {roi}"
            )
        return InstanceEvaluationScores(label_scores(seg, gt))

    @property
    def score(self) -> InstanceEvaluationScores:
        return InstanceEvaluationScores()
