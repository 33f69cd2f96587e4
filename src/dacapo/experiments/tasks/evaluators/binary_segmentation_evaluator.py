"""Binary segmentation evaluator: the 21 metrics of `dacapo.ops.binary_metrics` for every channel.

The output (test) array is a C-channel binary segmentation (channel axis first; no channel
axis is accepted when C == 1), non-zero = foreground. The evaluation (GT) array is brought
to C channels with `dacapo.ops.channels.gt_to_channels` (per-channel masks, or class ids
i + 1 for channel i) and ``!= 0`` is foreground.

ROI handling: both arrays must have the same voxel size and number of spatial dims. If the
spatial ROIs differ but one contains the other, the metrics are computed on their
intersection (the smaller ROI): e.g. a prediction cropped by the network's context is scored
against the central part of a larger GT crop. Partially overlapping or disjoint ROIs are a
ValueError naming both arrays.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from dacapo.io.arrays import open_array, read_array
from dacapo.ops.binary_metrics import binary_metrics
from dacapo.ops.channels import gt_to_channels

from .binary_segmentation_evaluation_scores import BinarySegmentationEvaluationScores
from .evaluator import Evaluator

#: threads of the two exact EDTs per channel (exact with any number; SimpleITK, which the
#: original DaCapo uses, takes 2 by default as well)
EDT_THREADS = max(1, min(2, os.cpu_count() or 1))

logger = logging.getLogger(__name__)


def common_roi(output: Array, evaluation: Array) -> Roi:
    """The ROI on which ``output`` is scored against ``evaluation`` (see module docstring).

    Raises ValueError naming the arrays on a voxel size / dimension / ROI mismatch.
    """
    if output.voxel_size.dims != evaluation.voxel_size.dims:
        raise ValueError(
            f"output array has {output.voxel_size.dims} spatial dims, evaluation array has "
            f"{evaluation.voxel_size.dims}"
        )
    if Coordinate(output.voxel_size) != Coordinate(evaluation.voxel_size):
        raise ValueError(
            f"output array voxel size {output.voxel_size} != evaluation array voxel size "
            f"{evaluation.voxel_size}"
        )
    out_roi, gt_roi = output.roi, evaluation.roi
    if out_roi == gt_roi:
        return out_roi
    if gt_roi.contains(out_roi) or out_roi.contains(gt_roi):
        roi = out_roi.intersect(gt_roi)
        logger.info("output ROI %s != evaluation ROI %s: scoring on %s", out_roi, gt_roi, roi)
        return roi
    raise ValueError(
        f"output array ROI {out_roi} and evaluation array ROI {gt_roi} differ and neither "
        "contains the other"
    )


def output_channels(data: np.ndarray, num_channels: int, dims: int) -> np.ndarray:
    """Output data with a leading channel axis of length ``num_channels`` (ValueError naming
    the output array otherwise)."""
    if data.ndim == dims and num_channels == 1:
        return data[None]
    if data.ndim != dims + 1 or data.shape[0] != num_channels:
        raise ValueError(
            f"output array: expected {num_channels} channel(s) over {dims} spatial dims, got "
            f"shape {data.shape}"
        )
    return data


def read_channels(output_array: Array | str | Path, evaluation_array: Array | str | Path,
                  num_channels: int) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """(output, GT, voxel size): both read in their `common_roi` and brought to
    ``num_channels`` leading channels (`output_channels`, `gt_to_channels`), values kept."""
    output = open_array(output_array, "output array")
    evaluation = open_array(evaluation_array, "evaluation array")
    roi = common_roi(output, evaluation)
    seg = output_channels(read_array(output, roi), num_channels, roi.dims)
    truth = gt_to_channels(read_array(evaluation, roi), num_channels, roi.dims,
                           "evaluation array")
    return seg, truth, tuple(output.voxel_size)


class BinarySegmentationEvaluator(Evaluator):
    """Scores a C-channel binary segmentation against GT, channel by channel.

    ``clip_distance`` and ``tol_distance`` are in world units; scores are keyed by channel
    name (``<channel>__<metric>``).
    """

    def __init__(self, clip_distance: float, tol_distance: float, channels: Sequence[str]) -> None:
        super().__init__()
        self.clip_distance = float(clip_distance)
        self.tol_distance = float(tol_distance)
        self.channels = list(channels)

    def evaluate(
        self, output_array: Array | str | Path, evaluation_array: Array | str | Path
    ) -> BinarySegmentationEvaluationScores:
        seg, truth, voxel_size = read_channels(output_array, evaluation_array, len(self.channels))
        return self.scores_from_metrics([
            binary_metrics(s != 0, t != 0, voxel_size, self.tol_distance, self.clip_distance,
                           threads=EDT_THREADS)
            for s, t in zip(seg, truth)
        ])

    def scores_from_metrics(
        self, per_channel: list[dict[str, float]]
    ) -> BinarySegmentationEvaluationScores:
        """The score object of one metrics dict per channel (in channel order)."""
        values = {}
        for channel, metrics in zip(self.channels, per_channel):
            values.update({f"{channel}__{name}": value for name, value in metrics.items()})
        return BinarySegmentationEvaluationScores(values, channels=self.channels)

    @property
    def score(self) -> BinarySegmentationEvaluationScores:
        return BinarySegmentationEvaluationScores(channels=self.channels)
