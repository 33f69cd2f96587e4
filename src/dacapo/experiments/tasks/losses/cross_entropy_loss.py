"""Weighted cross-entropy on logits for one-hot targets, and the marginal likelihood of the
possible classes where a voxel's class is only known to be one of several.

prediction: logits ``(B, C, *spatial)``; target: one-hot ``(B, C, *spatial)`` float;
weight: ``(B, C, *spatial)`` or ``(B, 1, *spatial)``. Each voxel's weight is the weight at
its true class channel (``Σ_c w_c t_c``), and the loss is

    Σ_v w(v) · CE(v) / N,   CE(v) = −Σ_c t_c(v) log softmax(p(v))_c

with N the number of voxels (B · |spatial|). Soft targets work too (CE with target
probabilities, weight averaged with them).

Sets of classes (partial annotations, `PartialOneHotPredictor`): where the target's channels
sum to more than 1.5, ``t`` is the 0/1 indicator of the set P(v) of classes the voxel may
belong to, and its term is the negative marginal likelihood of that set,

    CE(v) = −log Σ_{c ∈ P(v)} softmax(p(v))_c,   w(v) = Σ_c w_c t_c / |P(v)|

(the weight averaged over P(v)). It only asks that the voxel be in one of P's classes, and
moving probability among them leaves it unchanged: a class that may be present is never
pushed down. Voxels with a single class are computed exactly as above.
"""

from __future__ import annotations

import torch

from .loss import Loss, check_shapes

#: a target summing to more than this at a voxel is a set of possible classes
SET_THRESHOLD = 1.5


class WeightedCrossEntropyLoss(Loss):
    """``Σ w·CE / N`` over voxels, weight taken at the true class (marginal likelihood
    where the target marks several possible classes)."""

    def compute(
        self,
        prediction: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        weight = self.checked(prediction, target, weight)
        return self.from_log_probabilities(torch.log_softmax(prediction, dim=1), target, weight)

    @staticmethod
    def checked(prediction: torch.Tensor, target: torch.Tensor,
                weight: torch.Tensor | None) -> torch.Tensor | None:
        """``weight`` broadcast to the prediction's channels; ValueError on shapes."""
        if weight is not None and weight.dim() == prediction.dim() and weight.shape[1] == 1:
            weight = weight.expand_as(prediction)
        check_shapes(prediction, target, weight)
        if prediction.dim() < 2:
            raise ValueError(f"prediction: expected (B, C, ...), got shape {tuple(prediction.shape)}")
        return weight

    @staticmethod
    def from_log_probabilities(log_p: torch.Tensor, target: torch.Tensor,
                               weight: torch.Tensor | None) -> torch.Tensor:
        """The loss from ``log softmax(prediction)`` (shapes already checked)."""
        ce = -(target * log_p).sum(dim=1)
        w = None if weight is None else (weight * target).sum(dim=1)
        size = target.sum(dim=1)
        sets = size > SET_THRESHOLD
        if bool(sets.any()):
            # -log Σ_{c∈P} p_c; all classes kept where there is no set (finite, unused)
            keep = (target > 0) | ~sets.unsqueeze(1)
            marginal = -torch.logsumexp(log_p.masked_fill(~keep, float("-inf")), dim=1)
            ce = torch.where(sets, marginal, ce)
            if w is not None:
                w = torch.where(sets, w / size.clamp(min=1), w)
        if w is not None:
            ce = w * ce
        return ce.mean()
