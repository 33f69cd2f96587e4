"""Instance evaluator: a label volume against instance ground truth.

Both arrays may be funlib `Array`s or zarr paths. The ground truth may carry a singleton
channel axis. Voxel sizes must agree (ValueError otherwise); when the ROIs differ, the
evaluation runs on their intersection (ValueError if it is empty). Metrics are those of
`dacapo.ops.instance_metrics.instance_metrics` (GT label 0 ignored for VOI and ARAND).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from funlib.geometry import Roi
from funlib.persistence import Array

from dacapo.io.arrays import open_array, read_array
from dacapo.ops.instance_metrics import instance_metrics

from .evaluator import Evaluator
from .instance_evaluation_scores import InstanceEvaluationScores


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
    """Scores an instance segmentation: VOI split/merge, adapted Rand error, IoU matching."""

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
        return InstanceEvaluationScores(instance_metrics(seg, gt))

    @property
    def score(self) -> InstanceEvaluationScores:
        return InstanceEvaluationScores()
