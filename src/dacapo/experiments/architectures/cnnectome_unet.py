"""A 2D/3D UNet in the style of CNNectome / funlib.learn.torch (valid or same padding), plus
the task head and eval activation of a dacapo model (`DacapoUNet`): plain torch.

This file imports nothing but torch: `dacapo export` ships it verbatim in bioimage.io
packages as the ``pytorch_state_dict`` architecture (callable `DacapoUNet`), so a package
runs where only torch is installed. The state dict of
`DacapoUNet` has the keys of a dacapo model checkpoint (``body.*``, ``head.*``).

It is also TorchScript-compatible (`torch.jit.script`), for the package's ``torchscript``
weights.
"""

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
            pad = tuple(int(k) // 2 for k in kernel) if padding == "same" else 0
            layers.append(
                _conv(dims)(in_channels, out_channels, tuple(int(k) for k in kernel), padding=pad)
            )
            if batch_norm:
                layers.append((nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d)(out_channels))
            layers.append(nn.ReLU(inplace=True))
            in_channels = out_channels
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def pooling_problem(pooling: Sequence[int], dims: int) -> str:
    """Why ``pooling`` is not a valid ``input_pooling`` for ``dims`` axes ('' if it is)."""
    if len(pooling) != dims or any(int(f) < 1 or (int(f) > 1 and int(f) % 2) for f in pooling):
        return f"input_pooling: one factor per axis, 1 or even, got {tuple(pooling)}"
    return ""


def center_crop(x: torch.Tensor, shape: list[int]) -> torch.Tensor:
    """Crop the spatial dims of ``x`` to ``shape`` around the centre."""
    for i in range(len(shape)):
        dim = i + 2
        offset = (x.shape[dim] - shape[i]) // 2
        x = x.narrow(dim, offset, shape[i])
    return x


class CNNectomeUNet(nn.Module):
    """UNet: conv passes, max-pool downsampling, upsampling (nearest + 1x1 conv when
    ``constant_upsample``, else transposed conv), skip connections cropped to match.

    With ``upsample_factors`` the output is further upsampled (output voxel size =
    input voxel size / prod(upsample_factors)). With ``input_pooling`` (1 or even factors,
    one per axis) the input is average-pooled by it first, the UNet works on that coarser
    grid, and its output features are interpolated linearly back to the input's grid and
    cropped by ``f // 2`` voxels per side (where the interpolation would extrapolate):
    ``n`` coarse output voxels give ``f·(n − 1)``.
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
        input_pooling: Sequence[int] = (),
    ) -> None:
        super().__init__()
        dims = len(kernel_size_down[0][0])
        pooling = [int(v) for v in input_pooling] or [1] * dims
        problem = pooling_problem(pooling, dims)
        if problem:
            raise ValueError(problem)
        self.input_pooling = pooling
        self.pool_in = (nn.AvgPool3d if dims == 3 else nn.AvgPool2d)(pooling, stride=pooling)
        self.pooled = max(pooling) > 1
        self.interpolation = "trilinear" if dims == 3 else "bilinear"
        levels = len(downsample_factors) + 1
        fmaps = [num_fmaps * fmap_inc_factor**level for level in range(levels)]
        self.downsample_factors = [tuple(int(v) for v in f) for f in downsample_factors]
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
                        nn.Upsample(scale_factor=tuple(float(f) for f in factor), mode="nearest"),
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
            f = tuple(int(v) for v in factor)
            self.extra_up.append(nn.Sequential(transposed(fmaps_out, fmaps_out, f, stride=f), nn.ReLU()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pooled:
            x = self.pool_in(x)
        skips: list[torch.Tensor] = []
        levels = len(self.down)
        for level, conv in enumerate(self.down):
            x = conv(x)
            if level < levels - 1:
                skips.append(x)
                for p, pool in enumerate(self.pool):  # self.pool[level], for TorchScript
                    if p == level:
                        x = pool(x)
        for upsample, conv in zip(self.upsample, self.up):
            x = upsample(x)
            skip = skips.pop()
            skip = center_crop(skip, x.shape[2:])
            x = conv(torch.cat([skip, center_crop(x, skip.shape[2:])], dim=1))
        if self.pooled:
            x = nn.functional.interpolate(
                x, scale_factor=[float(f) for f in self.input_pooling], mode=self.interpolation,
                align_corners=False)
            x = center_crop(x, [int(s) - 2 * (f // 2) for s, f in zip(x.shape[2:], self.input_pooling)])
        for up in self.extra_up:
            x = up(x)
        return x

    def output_shape(self, shape: Sequence[int]) -> list[int]:
        """Spatial output shape of `forward` for a spatial input ``shape``, by the layers'
        size arithmetic (no forward pass: a real one costs a full block of compute);
        ValueError where `forward` would fail (a size below 1, an upsampled map larger than
        its skip connection)."""

        def convs(conv_pass: ConvPass, size: list[int]) -> list[int]:
            for m in conv_pass.layers:
                if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                    size = [v + 2 * int(p) - (int(k) - 1)
                            for v, k, p in zip(size, m.kernel_size, m.padding)]
                    if min(size) < 1:
                        raise ValueError(f"input {list(shape)}: a convolution's output is empty")
            return size

        size = [int(v) for v in shape]
        if any(v % f for v, f in zip(size, self.input_pooling)):
            raise ValueError(f"input {list(shape)}: not a multiple of input_pooling {self.input_pooling}")
        size = [v // f for v, f in zip(size, self.input_pooling)]
        skips: list[list[int]] = []
        for level, conv in enumerate(self.down):
            size = convs(conv, size)
            if level < len(self.down) - 1:
                skips.append(size)
                size = [v // f for v, f in zip(size, self.downsample_factors[level])]
                if min(size) < 1:
                    raise ValueError(f"input {list(shape)}: a max-pooling's output is empty")
        for level, conv in zip(reversed(range(len(self.up))), self.up):
            size = [v * f for v, f in zip(size, self.downsample_factors[level])]
            skip = skips.pop()
            if any(a > b for a, b in zip(size, skip)):
                raise ValueError(f"input {list(shape)}: upsampled {size} > skip {skip}")
            size = convs(conv, size)
        size = [v * f - 2 * (f // 2) for v, f in zip(size, self.input_pooling)]
        for up in self.extra_up:
            size = [v * int(f) for v, f in zip(size, up[0].stride)]
        return size


class SigmoidFirst(nn.Module):
    """Sigmoid on the first ``num_channels`` channels (dim 1), identity on the rest."""

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        self.num_channels = int(num_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.num_channels
        return torch.cat([torch.sigmoid(x[:, :c]), x[:, c:]], dim=1)


def activation_module(name: str, num_channels: int = 0) -> nn.Module:
    """``identity``, ``sigmoid``, ``softmax`` (over channels) or ``sigmoid_first``
    (sigmoid on the first ``num_channels`` channels)."""
    if name == "identity":
        return nn.Identity()
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "softmax":
        return nn.Softmax(dim=1)
    if name == "sigmoid_first":
        return SigmoidFirst(num_channels)
    raise ValueError(f"activation: unknown {name!r} (identity, sigmoid, softmax, sigmoid_first)")


class DacapoUNet(nn.Module):
    """``activation(head(body(x)))``: a dacapo model as it predicts (eval mode).

    ``body`` is a `CNNectomeUNet` with the given arguments, ``head`` a convolution from
    ``fmaps_out`` to ``out_channels`` with kernel ``head_kernel_size`` (same padding).
    Input ``(B, in_channels, *spatial)`` of the raw scaled as in training, float32.
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
        out_channels: int,
        constant_upsample: bool = True,
        padding: str = "valid",
        batch_norm: bool = False,
        upsample_factors: Sequence[Sequence[int]] = (),
        input_pooling: Sequence[int] = (),
        head_kernel_size: int = 1,
        activation: str = "identity",
        activation_channels: int = 0,
    ) -> None:
        super().__init__()
        self.body = CNNectomeUNet(
            in_channels, num_fmaps, fmaps_out, fmap_inc_factor, downsample_factors,
            kernel_size_down, kernel_size_up, constant_upsample, padding, batch_norm,
            upsample_factors, input_pooling,
        )
        dims = len(kernel_size_down[0][0])
        k = int(head_kernel_size)
        self.head = _conv(dims)(fmaps_out, out_channels, k, padding=k // 2)
        self.activation = activation_module(activation, activation_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.head(self.body(x)))
