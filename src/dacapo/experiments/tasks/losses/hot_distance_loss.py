"""Hot-distance loss: BCE-with-logits on the C binary channels + weighted MSE on the C
distance channels.

Prediction, target and weight have 2C channels (dim 1) ordered as in
`HotDistancePredictor`: ``[binary logits / targets, tanh distances]``. The loss is

    Σ_{first C} w·BCE(logit, t) / N_half  +  Σ_{last C} w·(p − t)² / N_half

each half a weighted mean over its own N_half elements (weights applied once).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .loss import Loss, check_shapes


class HotDistanceLoss(Loss):
    """Weighted BCE-with-logits (first half) + weighted MSE (second half) over channels."""

    def compute(
        self,
        prediction: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_shapes(prediction, target, weight)
        if prediction.dim() < 2 or prediction.shape[1] % 2:
            raise ValueError(
                f"prediction: expected an even number of channels (dim 1), got shape "
                f"{tuple(prediction.shape)}"
            )
        c = prediction.shape[1] // 2
        w_bin = None if weight is None else weight[:, :c]
        bce = F.binary_cross_entropy_with_logits(
            prediction[:, :c], target[:, :c], weight=w_bin, reduction="mean"
        )
        sq = (prediction[:, c:] - target[:, c:]) ** 2
        if weight is not None:
            sq = weight[:, c:] * sq
        return bce + sq.mean()
