"""Affinities loss: weighted BCE-with-logits on the affinity channels + a weighted MSE on
the sigmoid of the LSD channels.

Prediction (logits), target and weight have ``num_affinities`` (+ LSD) channels (dim 1),
ordered as in `AffinitiesPredictor`. With K = ``num_affinities``::

    loss = Σ_{c < K} w·BCE(logit, t) / N_aff  +  ratio · Σ_{c ≥ K} w·(σ(logit) − t)² / N_lsd

each term a weighted mean over its own elements (weights applied once, zero weight = ignored;
the affinity weights carry the affinity mask, with or without LSDs), ``ratio`` =
``lsds_to_affs_weight_ratio``. Without LSD channels only the first term remains.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .loss import Loss, check_shapes


class AffinitiesLoss(Loss):
    """Weighted BCE-with-logits on affinities + ratio × weighted MSE on sigmoid(LSDs)."""

    def __init__(self, num_affinities: int, lsds_to_affs_weight_ratio: float = 1.0) -> None:
        if int(num_affinities) < 1:
            raise ValueError(f"num_affinities: must be >= 1, got {num_affinities}")
        if not lsds_to_affs_weight_ratio >= 0:
            raise ValueError(
                f"lsds_to_affs_weight_ratio: must be >= 0, got {lsds_to_affs_weight_ratio}"
            )
        self.num_affinities = int(num_affinities)
        self.lsds_to_affs_weight_ratio = float(lsds_to_affs_weight_ratio)

    def compute(
        self,
        prediction: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_shapes(prediction, target, weight)
        k = self.num_affinities
        if prediction.dim() < 3 or prediction.shape[1] < k:
            raise ValueError(
                f"prediction: expected (B, C >= {k}, *spatial) with C = num_affinities "
                f"(+ LSDs), got shape {tuple(prediction.shape)}"
            )
        loss = F.binary_cross_entropy_with_logits(
            prediction[:, :k],
            target[:, :k],
            weight=None if weight is None else weight[:, :k],
            reduction="mean",
        )
        if prediction.shape[1] > k:
            sq = (torch.sigmoid(prediction[:, k:]) - target[:, k:]) ** 2
            if weight is not None:
                sq = weight[:, k:] * sq
            loss = loss + self.lsds_to_affs_weight_ratio * sq.mean()
        return loss
