"""Dummy predictor (tests): target = foreground indicator repeated per embedding channel."""

from __future__ import annotations

import numpy as np
from funlib.persistence import Array

from dacapo.experiments.array_types import ArrayType
from dacapo.experiments.model import create_model

from .predictor import Predictor, like, spatial_data


class DummyPredictor(Predictor):
    """Deterministic: target channel i = (gt != 0), weight = mask (or 1)."""

    def __init__(self, embedding_dims: int) -> None:
        self.embedding_dims = embedding_dims

    @property
    def channels(self) -> list[str]:
        return [f"embedding_{i}" for i in range(self.embedding_dims)]

    @property
    def output_array_type(self) -> ArrayType:
        return ArrayType("embedding", tuple(self.channels))

    def create_model(self, architecture):
        return create_model(architecture, self.embedding_dims)

    def create_target(self, gt: Array) -> Array:
        fg = (spatial_data(gt) != 0).astype(np.float32)
        return like(gt, np.repeat(fg[None], self.embedding_dims, axis=0))

    def create_weight(self, gt, target, mask=None, moving_class_counts=None):
        weight = np.ones(target.data.shape, dtype=np.float32)
        if mask is not None:
            weight *= spatial_data(mask, "mask").astype(np.float32)[None]
        return like(gt, weight), moving_class_counts
