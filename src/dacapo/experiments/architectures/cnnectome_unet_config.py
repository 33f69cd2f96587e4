"""Config of the CNNectome-style UNet (2D or 3D)."""

from __future__ import annotations

import attr
import torch
from funlib.geometry import Coordinate

from .architecture_config import ArchitectureConfig
from .cnnectome_unet import CNNectomeUNet, pooling_problem


def _coords(values):
    return None if values is None else [Coordinate(v) for v in values]


def _kernels(values):
    return None if values is None else [[Coordinate(k) for k in level] for level in values]


@attr.s
class CNNectomeUNetConfig(ArchitectureConfig):
    """A UNet with ``len(downsample_factors)`` downsampling levels."""

    input_shape: Coordinate = attr.ib(
        converter=Coordinate, metadata={"help_text": "Spatial input shape in voxels for training."}
    )
    fmaps_out: int = attr.ib(metadata={"help_text": "Feature maps of the last layer."})
    fmaps_in: int = attr.ib(metadata={"help_text": "Input channels (e.g. 1 for grey-value raw)."})
    num_fmaps: int = attr.ib(metadata={"help_text": "Feature maps of the first layer."})
    fmap_inc_factor: int = attr.ib(
        metadata={"help_text": "Feature-map multiplier from one level to the next."}
    )
    downsample_factors: list[Coordinate] = attr.ib(
        converter=_coords, metadata={"help_text": "Max-pool factor per level, e.g. [(2,2,2)]."}
    )
    kernel_size_down: list[list[Coordinate]] | None = attr.ib(
        default=None,
        converter=_kernels,
        metadata={"help_text": "Kernel sizes per conv of each down level (default two 3s)."},
    )
    kernel_size_up: list[list[Coordinate]] | None = attr.ib(
        default=None,
        converter=_kernels,
        metadata={"help_text": "Kernel sizes per conv of each up level (default two 3s)."},
    )
    eval_shape_increase: Coordinate | None = attr.ib(
        default=None,
        converter=attr.converters.optional(Coordinate),
        metadata={"help_text": "Voxels added to input_shape for prediction."},
    )
    upsample_factors: list[Coordinate] | None = attr.ib(
        default=None,
        converter=_coords,
        metadata={"help_text": "Extra output upsampling (super-resolution); None for none."},
    )
    input_pooling: Coordinate | None = attr.ib(
        default=None,
        converter=attr.converters.optional(Coordinate),
        metadata={"help_text": "Average-pool the input by this factor per axis (1 or even) and "
                               "interpolate the output back linearly: the network works on a "
                               "coarser grid, its output on the input's; None for none."},
    )
    constant_upsample: bool = attr.ib(
        default=True,
        metadata={"help_text": "Nearest-neighbour upsampling + 1x1 conv instead of transposed conv."},
    )
    padding: str = attr.ib(
        default="valid", metadata={"help_text": "'valid' (output smaller than input) or 'same'."}
    )
    batch_norm: bool = attr.ib(default=False, metadata={"help_text": "Batch norm after each conv."})

    @property
    def num_in_channels(self) -> int:
        return self.fmaps_in

    @property
    def num_out_channels(self) -> int:
        return self.fmaps_out

    def _default_kernels(self) -> list[list[Coordinate]]:
        return [[Coordinate((3,) * self.dims)] * 2 for _ in range(len(self.downsample_factors) + 1)]

    def unet_kwargs(self) -> dict:
        """Arguments of `CNNectomeUNet` for this config, as plain ints/lists/strings."""
        down = self.kernel_size_down or self._default_kernels()
        up = self.kernel_size_up or self._default_kernels()[:-1]

        def ints(c) -> list[int]:
            return [int(v) for v in c]

        return {
            "in_channels": int(self.fmaps_in),
            "num_fmaps": int(self.num_fmaps),
            "fmaps_out": int(self.fmaps_out),
            "fmap_inc_factor": int(self.fmap_inc_factor),
            "downsample_factors": [ints(f) for f in self.downsample_factors],
            "kernel_size_down": [[ints(k) for k in level] for level in down],
            "kernel_size_up": [[ints(k) for k in level] for level in up],
            "constant_upsample": bool(self.constant_upsample),
            "padding": str(self.padding),
            "batch_norm": bool(self.batch_norm),
            "upsample_factors": [ints(f) for f in self.upsample_factors or []],
            "input_pooling": ints(self.input_pooling) if self.input_pooling else [],
        }

    def module(self) -> torch.nn.Module:
        return CNNectomeUNet(**self.unet_kwargs())

    def scale(self, input_voxel_size: Coordinate) -> Coordinate:
        voxel_size = Coordinate(input_voxel_size)
        for factor in self.upsample_factors or []:
            voxel_size = voxel_size / Coordinate(factor)
        return voxel_size

    def verify(self) -> tuple[bool, str]:
        problems = []
        dims = len(self.input_shape)
        if dims not in (2, 3):
            problems.append(f"input_shape: must be 2D or 3D, got {tuple(self.input_shape)}")
        for i, f in enumerate(self.downsample_factors):
            if len(f) != dims:
                problems.append(f"downsample_factors[{i}]: {tuple(f)} has not {dims} dims")
        if self.padding not in ("valid", "same"):
            problems.append(f"padding: must be 'valid' or 'same', got {self.padding!r}")
        problem = pooling_problem(tuple(self.input_pooling), dims) if self.input_pooling else ""
        if problem:
            problems.append(problem)
        for field in ("fmaps_in", "fmaps_out", "num_fmaps", "fmap_inc_factor"):
            if getattr(self, field) < 1:
                problems.append(f"{field}: must be >= 1")
        return (not problems, "; ".join(problems) or "valid")
