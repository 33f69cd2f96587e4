"""A tiny architecture for tests: one 3x3(x3) convolution, same padding."""

from __future__ import annotations

import attr
import torch
from funlib.geometry import Coordinate

from .architecture_config import ArchitectureConfig


class DummyArchitecture(torch.nn.Module):
    def __init__(self, num_in_channels: int, num_out_channels: int, dims: int) -> None:
        super().__init__()
        conv = torch.nn.Conv3d if dims == 3 else torch.nn.Conv2d
        self.conv = conv(num_in_channels, num_out_channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@attr.s
class DummyArchitectureConfig(ArchitectureConfig):
    """A single convolution (kernel 3, same padding): for tests."""

    num_in_channels: int = attr.ib(default=1, metadata={"help_text": "Input channels."})
    num_out_channels: int = attr.ib(default=12, metadata={"help_text": "Output channels."})
    input_shape: Coordinate = attr.ib(
        default=Coordinate(40, 20, 20),
        converter=Coordinate,
        metadata={"help_text": "Spatial input shape in voxels (2 or 3 dims)."},
    )
    eval_shape_increase: Coordinate | None = attr.ib(
        default=None,
        converter=attr.converters.optional(Coordinate),
        metadata={"help_text": "Voxels added to input_shape for prediction."},
    )

    def module(self) -> torch.nn.Module:
        return DummyArchitecture(self.num_in_channels, self.num_out_channels, self.dims)
