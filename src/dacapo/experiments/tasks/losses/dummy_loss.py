"""Dummy loss (tests): weighted mean absolute difference."""

from __future__ import annotations

import torch

from .loss import Loss, check_shapes


class DummyLoss(Loss):
    """``sum(w * |p - t|) / N``."""

    def compute(self, prediction, target, weight=None) -> torch.Tensor:
        check_shapes(prediction, target, weight)
        diff = torch.abs(prediction - target)
        if weight is not None:
            diff = diff * weight
        return diff.mean()
