"""Hot-distance predictor: a binary ("hot") and a signed-distance output per channel.

Target, 2C channels in this order: ``[inside_0 .. inside_{C-1}, dist_0 .. dist_{C-1}]``
with ``inside_c = (gt_c > 0)`` (float 0/1) and ``dist_c`` the `DistancePredictor` target
(``tanh(signed distance / scale_factor)``).

Weight, 2C channels in the same order: the inside/outside class-balanced weights of
`DistancePredictor` for both halves (``moving_class_counts`` shape ``(C, 2)``, counted once);
the distance half is also zeroed where the distance is unknowable if ``mask_distances``.

Model: head with 2C outputs (``kernel_size``, default 1). In training the first C channels
are logits (BCE-with-logits, `HotDistanceLoss`); in eval mode `HotDistanceActivation`
applies a sigmoid to them, so the eval output is ``[P(inside)_0.., distance_0..]`` and
post-processing/evaluation use the C distance channels (the second half).
Padding as `DistancePredictor`. Composes a `DistancePredictor` (same kernel, no copy).
Partial annotations as `DistancePredictor`: both channels of an unannotated class get
weight 0 in the crop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from funlib.geometry import Coordinate
from funlib.persistence import Array
from torch import nn

from dacapo.experiments.array_types import ArrayType
from dacapo.experiments.model import create_model

from .distance_predictor import DistancePredictor, channel_annotation, gt_channels, mask_channels
from .predictor import Annotation, Predictor, channel_data, like


class HotDistanceActivation(nn.Module):
    """Sigmoid on the first ``num_channels`` channels (dim 1), identity on the rest."""

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        self.num_channels = int(num_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.num_channels
        return torch.cat([torch.sigmoid(x[:, :c]), x[:, c:]], dim=1)


class HotDistancePredictor(Predictor):
    """Binary + signed-distance targets (2C channels, see module docstring)."""

    def __init__(
        self,
        channels: list[str],
        scale_factor: float,
        mask_distances: bool,
        kernel_size: int | None = None,
        clipmin: float = 0.05,
        clipmax: float = 0.95,
    ) -> None:
        self.distance = DistancePredictor(channels, scale_factor, mask_distances, clipmin, clipmax)
        self.kernel_size = kernel_size

    @property
    def channels(self) -> list[str]:
        return self.distance.channels

    @property
    def num_output_channels(self) -> int:
        return 2 * len(self.channels)

    @property
    def output_array_type(self) -> ArrayType:
        """Eval output: C probabilities ``<name>_probability`` then C distances ``<name>``."""
        names = tuple(f"{c}_probability" for c in self.channels) + tuple(self.channels)
        return ArrayType("distance", names)

    def create_model(self, architecture):
        return create_model(
            architecture,
            self.num_output_channels,
            kernel_size=self.kernel_size,
            eval_activation=HotDistanceActivation(len(self.channels)),
        )

    def padding(self, gt_voxel_size: Coordinate) -> Coordinate:
        return self.distance.padding(gt_voxel_size)

    def for_annotation(self, annotation: Annotation) -> Predictor:
        """Weight 0 on both channels (inside, distance) of an unannotated class (see
        `PartialChannelsPredictor`)."""
        return channel_annotation(self, annotation)

    def create_target(self, gt: Array) -> Array:
        gt_np = gt_channels(gt, len(self.channels))
        inside = (gt_np > 0).astype(np.float32)
        dist = self.distance.distance_target(gt_np, gt.voxel_size)
        return like(gt, np.concatenate([inside, dist]))

    def create_weight(
        self,
        gt: Array,
        target: Array,
        mask: Array | None = None,
        moving_class_counts: Any = None,
    ) -> tuple[Array, Any]:
        c = len(self.channels)
        gt_np = gt_channels(gt, c)
        mask_np = mask_channels(mask, gt, c)
        balanced, counts = self.distance.balanced_weight(gt_np, mask_np, moving_class_counts)
        dist_weight = balanced
        if self.distance.mask_distances:
            dist_target = channel_data(target, 2 * c, "target")[c:]
            dist_weight = balanced * self.distance.knowable(dist_target, mask_np, gt.voxel_size)
        return like(gt, np.concatenate([balanced, dist_weight]).astype(np.float32)), counts
