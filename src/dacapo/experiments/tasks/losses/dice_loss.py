"""Cross-entropy plus soft Dice for one-hot targets (nnU-Net's default loss), aware of
partial annotations.

prediction: logits ``(B, C, *spatial)``; target and weight as in `WeightedCrossEntropyLoss`.
With p = softmax(prediction), per class k over the whole batch ("batch Dice"),

    D_k = (2 Σ_v m_k p_k t_k + ε) / (Σ_v m_k (p_k + t_k) + ε),
    loss = CE + λ · (1 − mean_k D_k),

where m_k(v) = 1 where voxel v counts (weight > 0) and its membership of class k is known:
a voxel whose target is a set of possible classes (sum > 1.5, partial annotations) is
unknown for the classes of that set, known (absent) for the others. A class with no
known voxel in the batch is left out of the mean. The Dice term is not class-weighted
(it is balanced by construction); ε = 1e-5 (Milletari et al., "V-Net", 3DV 2016;
Isensee et al., "nnU-Net", Nature Methods 2021: CE + batch Dice).

Like the marginal cross-entropy, the term at a voxel with a set P depends on p only through
the classes outside P, so moving probability among P's classes changes nothing.
"""

from __future__ import annotations

import torch

from .cross_entropy_loss import SET_THRESHOLD, WeightedCrossEntropyLoss
from .loss import Loss

DICE_SMOOTH = 1e-5


def soft_dice(probabilities: torch.Tensor, target: torch.Tensor,
              known: torch.Tensor) -> torch.Tensor:
    """``mean_k D_k`` over the classes with a known voxel (formula in the module
    docstring); all three ``(B, C, *spatial)``, ``known`` 0/1."""
    dims = [0] + list(range(2, probabilities.dim()))
    inter = (known * probabilities * target).sum(dim=dims)
    total = (known * (probabilities + target)).sum(dim=dims)
    dice = (2 * inter + DICE_SMOOTH) / (total + DICE_SMOOTH)
    present = known.sum(dim=dims) > 0
    if not bool(present.any()):
        return probabilities.sum() * 0.0 + 1.0
    return dice[present].mean()


def known_mask(target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """``m_k(v)`` (bool): the voxel counts (weight > 0 at its class; a ``(B, 1, ...)``
    weight broadcasts) and is not in a set with k."""
    sets = (target.sum(dim=1, keepdim=True) > SET_THRESHOLD)
    known = ~(sets & (target > 0))
    if weight is not None:
        counts = (weight * target).sum(dim=1, keepdim=True) > 0
        known = known & counts
    return known


class CrossEntropyDiceLoss(Loss):
    """``CE + dice_weight · (1 − soft Dice)`` (module docstring)."""

    def __init__(self, dice_weight: float = 1.0) -> None:
        if not dice_weight >= 0:
            raise ValueError(f"dice_weight must be >= 0, got {dice_weight}")
        self.dice_weight = float(dice_weight)
        self.cross_entropy = WeightedCrossEntropyLoss()

    def compute(
        self,
        prediction: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.dice_weight == 0:
            return self.cross_entropy.compute(prediction, target, weight)
        ce_weight = self.cross_entropy.checked(prediction, target, weight)
        dtype = torch.promote_types(prediction.dtype, torch.float32)
        log_p = torch.log_softmax(prediction.to(dtype), dim=1)  # one softmax for both terms
        ce = self.cross_entropy.from_log_probabilities(log_p, target, ce_weight)
        dice = soft_dice(log_p.exp(), target.to(dtype), known_mask(target, weight).to(dtype))
        return ce + self.dice_weight * (1.0 - dice)
