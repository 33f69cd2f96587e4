"""Weighted cross-entropy on logits for one-hot targets.

prediction: logits ``(B, C, *spatial)``; target: one-hot ``(B, C, *spatial)`` float;
weight: ``(B, C, *spatial)`` or ``(B, 1, *spatial)``. Each voxel's weight is the weight at
its true class channel (``Σ_c w_c t_c``), and the loss is

    Σ_v w(v) · CE(v) / N,   CE(v) = −Σ_c t_c(v) log softmax(p(v))_c

with N the number of voxels (B · |spatial|). Soft targets work too (CE with target
probabilities, weight averaged with them).
"""

from __future__ import annotations

import torch

from .loss import Loss, check_shapes


class WeightedCrossEntropyLoss(Loss):
    """``Σ w·CE / N`` over voxels, weight taken at the true class."""

    def compute(
        self,
        prediction: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if weight is not None and weight.dim() == prediction.dim() and weight.shape[1] == 1:
            weight = weight.expand_as(prediction)
        check_shapes(prediction, target, weight)
        if prediction.dim() < 2:
            raise ValueError(f"prediction: expected (B, C, ...), got shape {tuple(prediction.shape)}")
        log_p = torch.log_softmax(prediction, dim=1)
        ce = -(target * log_p).sum(dim=1)
        if weight is not None:
            ce = (weight * target).sum(dim=1) * ce
        return ce.mean()
