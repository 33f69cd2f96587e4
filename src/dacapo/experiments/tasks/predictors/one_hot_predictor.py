"""One-hot predictor: class ids -> one-hot targets, class-balanced weights, softmax output.

GT: one channel (``(*spatial)`` or ``(1, *spatial)``) of class ids ``0..C-1`` (integers; a
float GT must hold integral values; anything else, NaN or ids outside the range is a
ValueError naming ``gt``). Target: ``(C, *spatial)`` float32 one-hot.

Weight: per voxel ``1 / (C · f_k)`` for its class ``k`` within the mask
(`dacapo.ops.balance.balance_weights` with ``num_classes = C`` on the single class map,
``moving_class_counts`` shape ``(1, C)``), repeated on all C channels (the loss reads it at
the true class); with ``balance=False`` the weight is the mask (1 within it, plain
cross-entropy; the class counts are still accumulated). Mask: ``(*spatial)`` or ``(1, *spatial)``, nonzero = labelled.

Model: head with C outputs (``kernel_size``, default 1); softmax over channels in eval mode
(training sees logits). No padding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from funlib.persistence import Array
from torch import nn

from dacapo.experiments.array_types import ArrayType
from dacapo.experiments.model import create_model
from dacapo.ops.balance import balance_weights

from .distance_predictor import mask_channels
from .inner_distance_predictor import integer_labels
from .predictor import Predictor, like, spatial_data


class OneHotPredictor(Predictor):
    """Predicts one probability per class."""

    clipmin = 0.05
    clipmax = 0.95

    def __init__(self, classes: list[str], kernel_size: int | None = None,
                 balance: bool = True) -> None:
        self.classes = list(classes)
        self.kernel_size = kernel_size
        self.balance = balance

    @property
    def channels(self) -> list[str]:
        return list(self.classes)

    @property
    def output_array_type(self) -> ArrayType:
        return ArrayType("probability", tuple(self.classes))

    def create_model(self, architecture):
        return create_model(
            architecture,
            len(self.classes),
            kernel_size=self.kernel_size,
            eval_activation=nn.Softmax(dim=1),
        )

    def class_ids(self, gt: Array) -> np.ndarray:
        """Validated class ids ``(*spatial)`` (int64)."""
        data = spatial_data(gt, "gt")
        if data.dtype.kind == "f" and np.isnan(data).any():
            raise ValueError("gt: contains NaN")
        ids = integer_labels(data, "gt").astype(np.int64, copy=False)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.classes)):
            raise ValueError(
                f"gt: class ids must lie in 0..{len(self.classes) - 1} for classes "
                f"{self.classes}, got range {ids.min()}..{ids.max()}"
            )
        return ids

    def create_target(self, gt: Array) -> Array:
        ids = self.class_ids(gt)
        target = (ids[None] == np.arange(len(self.classes)).reshape((-1,) + (1,) * ids.ndim))
        return like(gt, target.astype(np.float32))

    def create_weight(
        self,
        gt: Array,
        target: Array,
        mask: Array | None = None,
        moving_class_counts: Any = None,
    ) -> tuple[Array, Any]:
        ids = self.class_ids(gt)
        mask_np = mask_channels(mask, gt, 1)
        weight, counts = balance_weights(
            ids[None],
            mask_np,
            num_classes=len(self.classes),
            clipmin=self.clipmin,
            clipmax=self.clipmax,
            moving_counts=moving_class_counts,
        )
        if not self.balance:
            weight = (np.ones((1,) + ids.shape, np.float32) if mask_np is None
                      else (mask_np > 0).astype(np.float32))
        weight = np.repeat(weight, len(self.classes), axis=0)
        return like(gt, weight), counts
