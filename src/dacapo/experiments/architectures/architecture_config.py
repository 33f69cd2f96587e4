"""Base class of architecture configurations."""

from __future__ import annotations

from abc import ABC, abstractmethod

import attr
import torch
from funlib.geometry import Coordinate

from dacapo.io.config_yaml import register


@attr.s
class ArchitectureConfig(ABC):
    """Describes a network body; ``module()`` builds it as a `torch.nn.Module`.

    The module maps ``(B, num_in_channels, *input_shape)`` to
    ``(B, num_out_channels, *output_shape)``. Subclasses provide ``input_shape``
    (spatial training input shape in voxels, a `Coordinate`), ``num_in_channels`` and
    ``num_out_channels`` as fields or properties.
    """

    input_shape: Coordinate
    num_in_channels: int
    num_out_channels: int
    eval_shape_increase: Coordinate | None  # voxels added to input_shape for prediction

    name: str = attr.ib(metadata={"help_text": "A unique name for this architecture."})

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        register(cls, ArchitectureConfig)

    @property
    def dims(self) -> int:
        return len(self.input_shape)

    @property
    def eval_input_shape(self) -> Coordinate:
        """Input shape for prediction: ``input_shape + eval_shape_increase``."""
        increase = getattr(self, "eval_shape_increase", None)
        if increase is None:
            return Coordinate(self.input_shape)
        return Coordinate(self.input_shape) + Coordinate(increase)

    @abstractmethod
    def module(self) -> torch.nn.Module:
        """A freshly initialised network."""

    def scale(self, input_voxel_size: Coordinate) -> Coordinate:
        """Voxel size of the output for a given input voxel size."""
        return Coordinate(input_voxel_size)

    def verify(self) -> tuple[bool, str]:
        return True, "valid"
