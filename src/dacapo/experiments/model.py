"""A model: architecture body + task head (+ an activation applied in eval mode only)."""

from __future__ import annotations

import torch
from funlib.geometry import Coordinate
from torch import nn


class Model(nn.Module):
    """``head(architecture(x))``; ``eval_activation`` (e.g. sigmoid) only when not training.

    The loss sees logits in training; predictions written in eval mode are activated.
    """

    def __init__(
        self,
        architecture,
        head: nn.Module,
        eval_activation: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.architecture = architecture
        self.body = architecture.module()
        self.head = head
        self.eval_activation = eval_activation
        self.num_in_channels = architecture.num_in_channels
        self.num_out_channels = _out_channels(head)
        self.dims = architecture.dims

    @property
    def input_shape(self) -> Coordinate:
        return Coordinate(self.architecture.input_shape)

    @property
    def eval_input_shape(self) -> Coordinate:
        return Coordinate(self.architecture.eval_input_shape)

    @property
    def output_shape(self) -> Coordinate:
        """Spatial output shape for the training input shape."""
        return self.compute_output_shape(self.input_shape)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.body(x))
        if not self.training and self.eval_activation is not None:
            y = self.eval_activation(y)
        return y

    def compute_output_shape(self, input_shape) -> tuple[int, Coordinate]:
        """``(channels, spatial shape)`` of the output for a spatial ``input_shape``."""
        return _output_shape(self, tuple(int(s) for s in input_shape))

    def scale(self, input_voxel_size) -> Coordinate:
        """Output voxel size for an input voxel size."""
        return self.architecture.scale(Coordinate(input_voxel_size))


def _out_channels(head: nn.Module) -> int:
    convs = [m for m in head.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    return convs[-1].out_channels if convs else -1


def _output_shape(model: Model, input_shape: tuple[int, ...]) -> tuple[int, Coordinate]:
    """Shapes by the layers' size arithmetic where the body has ``output_shape`` (the
    CNNectome UNet) and the head is one convolution: no forward pass (a real one costs a
    block of compute; torch's ``meta`` device costs ~2 s to set up in a fresh process).
    Any other model runs a real forward pass."""
    cache = model.__dict__.setdefault("_shape_cache", {})
    if input_shape not in cache:
        head = model.head
        if hasattr(model.body, "output_shape") and isinstance(head, (nn.Conv2d, nn.Conv3d)):
            size = model.body.output_shape(input_shape)
            size = [(v + 2 * int(p) - int(d) * (int(k) - 1) - 1) // int(s) + 1 for v, k, p, d, s
                    in zip(size, head.kernel_size, head.padding, head.dilation, head.stride)]
            cache[input_shape] = (int(head.out_channels), Coordinate(size))
        else:
            device = next(model.parameters()).device
            was_training = model.training
            model.eval()
            with torch.no_grad():
                shape = (1, model.num_in_channels, *input_shape)
                y = model.head(model.body(torch.zeros(shape, device=device)))
            model.train(was_training)
            cache[input_shape] = (int(y.shape[1]), Coordinate(y.shape[2:]))
    return cache[input_shape]


def conv_head(
    in_channels: int, out_channels: int, dims: int, kernel_size: int | None = None
) -> nn.Module:
    """A convolution head; ``kernel_size`` (odd, default 1) with same padding."""
    k = kernel_size or 1
    conv = nn.Conv3d if dims == 3 else nn.Conv2d
    return conv(in_channels, out_channels, k, padding=k // 2)


def create_model(architecture, out_channels: int, kernel_size: int | None = None, eval_activation=None) -> Model:
    """Architecture + a convolution head with ``out_channels`` outputs."""
    head = conv_head(architecture.num_out_channels, out_channels, architecture.dims, kernel_size)
    return Model(architecture, head, eval_activation)
