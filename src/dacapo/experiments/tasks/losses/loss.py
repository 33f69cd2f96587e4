"""Base class of losses."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch


class Loss(ABC):
    """Compares a prediction with a target: ``compute(prediction, target, weight) -> scalar``.

    Weighted losses are ``sum(w * l) / N`` over all N elements (the weight multiplies the
    per-voxel loss once).
    """

    @abstractmethod
    def compute(
        self,
        prediction: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """A scalar loss tensor."""

    def __call__(self, prediction, target, weight=None) -> torch.Tensor:
        return self.compute(prediction, target, weight)


def check_shapes(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> None:
    """Raise a ValueError naming the tensor whose shape does not match the prediction."""
    if target.shape != prediction.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != prediction shape {tuple(prediction.shape)}")
    if weight is not None and weight.shape != prediction.shape:
        raise ValueError(f"weight shape {tuple(weight.shape)} != prediction shape {tuple(prediction.shape)}")
