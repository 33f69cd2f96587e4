"""A 2D/3D UNet in the style of CNNectome / funlib.learn.torch (valid or same padding)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _conv(dims: int):
    return nn.Conv3d if dims == 3 else nn.Conv2d


class ConvPass(nn.Module):
    """Convolutions with ReLU (optionally batch norm)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_sizes: Sequence[Sequence[int]],
        padding: str,
        batch_norm: bool,
    ) -> None:
        super().__init__()
        dims = len(kernel_sizes[0])
        layers: list[nn.Module] = []
        for kernel in kernel_sizes:
            pad = tuple(k // 2 for k in kernel) if padding == "same" else 0
            layers.append(_conv(dims)(in_channels, out_channels, tuple(kernel), padding=pad))
            if batch_norm:
                layers.append((nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d)(out_channels))
            layers.append(nn.ReLU(inplace=True))
            in_channels = out_channels
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def center_crop(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Crop the spatial dims of ``x`` to ``shape`` around the centre."""
    offsets = [(a - b) // 2 for a, b in zip(x.shape[2:], shape)]
    slices = tuple(slice(o, o + s) for o, s in zip(offsets, shape))
    return x[(slice(None), slice(None)) + slices]


class CNNectomeUNet(nn.Module):
    """UNet: conv passes, max-pool downsampling, upsampling (nearest + 1x1 conv when
    ``constant_upsample``, else transposed conv), skip connections cropped to match.

    With ``upsample_factors`` the output is further upsampled (output voxel size =
    input voxel size / prod(upsample_factors)).
    """

    def __init__(
        self,
        in_channels: int,
        num_fmaps: int,
        fmaps_out: int,
        fmap_inc_factor: int,
        downsample_factors: Sequence[Sequence[int]],
        kernel_size_down: Sequence[Sequence[Sequence[int]]],
        kernel_size_up: Sequence[Sequence[Sequence[int]]],
        constant_upsample: bool = True,
        padding: str = "valid",
        batch_norm: bool = False,
        upsample_factors: Sequence[Sequence[int]] = (),
    ) -> None:
        super().__init__()
        dims = len(kernel_size_down[0][0])
        levels = len(downsample_factors) + 1
        fmaps = [num_fmaps * fmap_inc_factor**level for level in range(levels)]
        self.downsample_factors = [tuple(f) for f in downsample_factors]
        self.down = nn.ModuleList()
        for level in range(levels):
            in_c = in_channels if level == 0 else fmaps[level - 1]
            self.down.append(ConvPass(in_c, fmaps[level], kernel_size_down[level], padding, batch_norm))
        self.pool = nn.ModuleList(
            (nn.MaxPool3d if dims == 3 else nn.MaxPool2d)(f, stride=f) for f in self.downsample_factors
        )
        self.upsample = nn.ModuleList()
        self.up = nn.ModuleList()
        for level in reversed(range(levels - 1)):
            factor = self.downsample_factors[level]
            if constant_upsample:
                self.upsample.append(
                    nn.Sequential(
                        nn.Upsample(scale_factor=factor, mode="nearest"),
                        _conv(dims)(fmaps[level + 1], fmaps[level], 1),
                    )
                )
            else:
                transposed = nn.ConvTranspose3d if dims == 3 else nn.ConvTranspose2d
                self.upsample.append(transposed(fmaps[level + 1], fmaps[level], factor, stride=factor))
            out_c = fmaps[level] if level > 0 else fmaps_out
            self.up.append(ConvPass(2 * fmaps[level], out_c, kernel_size_up[level], padding, batch_norm))
        self.extra_up = nn.ModuleList()
        for factor in upsample_factors:
            transposed = nn.ConvTranspose3d if dims == 3 else nn.ConvTranspose2d
            self.extra_up.append(
                nn.Sequential(transposed(fmaps_out, fmaps_out, tuple(factor), stride=tuple(factor)), nn.ReLU())
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, conv in enumerate(self.down):
            x = conv(x)
            if level < len(self.pool):
                skips.append(x)
                x = self.pool[level](x)
        for upsample, conv in zip(self.upsample, self.up):
            x = upsample(x)
            skip = center_crop(skips.pop(), x.shape[2:])
            x = conv(torch.cat([skip, center_crop(x, skip.shape[2:])], dim=1))
        for up in self.extra_up:
            x = up(x)
        return x
