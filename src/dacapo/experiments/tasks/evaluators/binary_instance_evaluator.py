"""Binary + instance evaluator: scores an instance segmentation as a mask and as instances.

Output: uint labels with C channels (channel axis first; none when C == 1). GT: brought to
C channels with `dacapo.ops.channels.gt_to_channels`; per channel its values are the truth
instances (label 0 = unlabelled, ignored by VOI and ARAND) and ``!= 0`` the truth mask.
ROI handling as the binary evaluator (`common_roi`). Per channel: `binary_metrics` of
``output != 0`` against ``gt != 0`` and `instance_scores` of the labels; names in
`BinaryInstanceEvaluationScores`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from funlib.persistence import Array

from dacapo.ops.binary_metrics import binary_metrics

from .binary_instance_evaluation_scores import INSTANCE_PREFIX, BinaryInstanceEvaluationScores
from .binary_segmentation_evaluator import (
    EDT_THREADS,
    BinarySegmentationEvaluator,
    read_channels,
)
from .evaluator import Evaluator
from .instance_evaluator import label_scores


class BinaryInstanceEvaluator(Evaluator):
    """Binary metrics of the foreground and instance metrics, channel by channel."""

    def __init__(self, clip_distance: float, tol_distance: float, channels: Sequence[str]) -> None:
        super().__init__()
        self.clip_distance = float(clip_distance)
        self.tol_distance = float(tol_distance)
        self.channels = list(channels)

    def evaluate(
        self, output_array: Array | str | Path, evaluation_array: Array | str | Path
    ) -> BinaryInstanceEvaluationScores:
        seg, truth, voxel_size = read_channels(output_array, evaluation_array, len(self.channels))
        if seg.dtype.kind not in "biu":
            raise ValueError(f"output array: expected integer instance labels, got {seg.dtype}")
        binary = [binary_metrics(s != 0, t != 0, voxel_size, self.tol_distance,
                                 self.clip_distance, threads=EDT_THREADS) for s, t in zip(seg, truth)]
        instances = [label_scores(s, t) for s, t in zip(seg, truth)]
        return self.scores_from_metrics(binary, instances)

    def binary_part(self) -> BinarySegmentationEvaluator:
        """The binary evaluator of the foreground (same channels, clip and tolerance)."""
        return BinarySegmentationEvaluator(self.clip_distance, self.tol_distance, self.channels)

    def scores_from_metrics(self, binary: list[dict[str, float]],
                            instances: list[dict[str, float]]) -> BinaryInstanceEvaluationScores:
        """The score object of one binary and one instance metrics dict per channel."""
        values: dict[str, float] = {}
        for channel, b, inst in zip(self.channels, binary, instances):
            values.update({f"{channel}__{m}": v for m, v in b.items()})
            if len(self.channels) > 1:
                values.update({f"{channel}__{INSTANCE_PREFIX}{m}": v for m, v in inst.items()})
        for metric in BinaryInstanceEvaluationScores.INSTANCE_METRICS:
            found = [m[metric] for m in instances if not math.isnan(m[metric])]
            values[metric] = float(np.mean(found)) if found else math.nan
        return BinaryInstanceEvaluationScores(values, channels=self.channels)

    @property
    def score(self) -> BinaryInstanceEvaluationScores:
        return BinaryInstanceEvaluationScores(channels=self.channels)
