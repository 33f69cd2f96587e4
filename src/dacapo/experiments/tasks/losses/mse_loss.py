"""Weighted mean squared error: ``Σ w·(p − t)² / N`` (weight applied once)."""

from __future__ import annotations

import torch

from .loss import Loss, check_shapes


class MSELoss(Loss):
    """``mean(w · (prediction − target)²)`` over all N elements; unweighted if ``weight`` is None."""

    def compute(
        self,
        prediction: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_shapes(prediction, target, weight)
        sq = (prediction - target) ** 2
        if weight is not None:
            sq = weight * sq
        return sq.mean()
