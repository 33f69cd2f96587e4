"""Inner-distance predictor: labels -> tanh-normalised distance inside each object.

Target, per channel: ``tanh(d / scale_factor)`` where, for a voxel of label
``l ≠ 0``, ``d`` is the exact distance (world units) from its centre to the nearest face
between a voxel of label ``l`` and a voxel of any other label — the same boundary convention
as the signed distance (`dacapo.ops.distances.inner_distance`). Touching instances are
separated by their common faces; background (0) gets 0; a label filling the whole crop gets
half the smallest crop extent. The crop edge is not a boundary.

GT layouts (`dacapo.ops.channels.gt_to_channels`): one channel of instance ids; ``(C,
*spatial)`` with instance ids per channel; or class ids ``1..C`` (then each channel is a
binary mask). GT must hold integers (a float GT with non-integral values is rejected).

Weight: object/background balanced per channel within the mask (clip 0.05..0.95,
``moving_class_counts`` shape ``(C, 2)``). Padding as `DistancePredictor`. No eval activation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from funlib.persistence import Array

from dacapo.ops.distances import inner_distance, tanh_normalize

from .distance_predictor import TanhDistancePredictor, gt_channels, mask_channels
from .predictor import binary_balanced_weight, like


def integer_labels(data: np.ndarray, name: str = "gt") -> np.ndarray:
    """``data`` as integers; ValueError naming ``name`` for non-integral floats."""
    if data.dtype.kind in "biu":
        return data
    if data.dtype.kind != "f" or not np.all(np.isfinite(data)) or np.any(data != np.round(data)):
        raise ValueError(f"{name}: expected integer labels, got non-integral {data.dtype} values")
    return data.astype(np.int64)


class InnerDistancePredictor(TanhDistancePredictor):
    """Predicts ``tanh(inner distance / scale_factor)`` per channel."""

    clipmin = 0.05
    clipmax = 0.95

    def create_target(self, gt: Array) -> Array:
        labels = integer_labels(gt_channels(gt, len(self._channels)))
        target = np.stack(
            [tanh_normalize(inner_distance(c, gt.voxel_size), self.scale_factor) for c in labels]
        )
        return like(gt, target)

    def create_weight(
        self,
        gt: Array,
        target: Array,
        mask: Array | None = None,
        moving_class_counts: Any = None,
    ) -> tuple[Array, Any]:
        labels = integer_labels(gt_channels(gt, len(self._channels)))
        weight, counts = binary_balanced_weight(
            labels != 0,
            mask_channels(mask, gt, len(self._channels)),
            self.clipmin,
            self.clipmax,
            moving_class_counts,
        )
        return like(gt, weight), counts
