"""Losses: compare a prediction with a target under per-voxel weights."""

from .affinities_loss import AffinitiesLoss
from .cross_entropy_loss import WeightedCrossEntropyLoss
from .dice_loss import CrossEntropyDiceLoss
from .dummy_loss import DummyLoss
from .hot_distance_loss import HotDistanceLoss
from .loss import Loss
from .mse_loss import MSELoss

__all__ = [
    "AffinitiesLoss",
    "CrossEntropyDiceLoss",
    "DummyLoss",
    "HotDistanceLoss",
    "Loss",
    "MSELoss",
    "WeightedCrossEntropyLoss",
]
