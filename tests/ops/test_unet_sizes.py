"""Accepted UNet input sizes (dacapo.ops.unet_sizes) against the real network.

The brute-force twin of "accepted": a size s is accepted when tiles of size s, cut from a
larger input at multiples of the step, give exactly the centred ``s * up + offset`` crops
of the larger input's prediction (what blockwise prediction and bioimage.io's tiling
rely on). Sizes on the grid must have it,
sizes off the grid must not (or the network must fail on them).
"""

from __future__ import annotations

import pytest
import torch

from dacapo.experiments.architectures.cnnectome_unet import CNNectomeUNet
from dacapo.ops.unet_sizes import unet_axes_grid, unet_output_size, unet_size_grid

CONFIGS = {
    "demo_3d": dict(in_channels=1, num_fmaps=3, fmaps_out=3, fmap_inc_factor=2,
                    downsample_factors=[[1, 2, 2]],
                    kernel_size_down=[[[1, 3, 3]] * 2, [[3, 3, 3]] * 2],
                    kernel_size_up=[[[1, 3, 3]] * 2]),
    "two_levels_2d": dict(in_channels=1, num_fmaps=2, fmaps_out=2, fmap_inc_factor=2,
                          downsample_factors=[[2, 2], [3, 3]],
                          kernel_size_down=[[[3, 3]] * 2] * 3, kernel_size_up=[[[3, 3]] * 2] * 2,
                          constant_upsample=False),
    "same_2d": dict(in_channels=1, num_fmaps=2, fmaps_out=2, fmap_inc_factor=2,
                    downsample_factors=[[2, 2]], kernel_size_down=[[[3, 3]] * 2] * 2,
                    kernel_size_up=[[[3, 3]] * 2], padding="same"),
    "upsampled_2d": dict(in_channels=1, num_fmaps=2, fmaps_out=2, fmap_inc_factor=2,
                         downsample_factors=[[2, 2]], kernel_size_down=[[[3, 3]] * 2] * 2,
                         kernel_size_up=[[[3, 3]] * 2], upsample_factors=[[2, 2]]),
    "pooled_2d": dict(in_channels=1, num_fmaps=2, fmaps_out=2, fmap_inc_factor=2,
                      downsample_factors=[[2, 2]], kernel_size_down=[[[3, 3]] * 2] * 2,
                      kernel_size_up=[[[3, 3]] * 2], input_pooling=[2, 4]),
    "pooled_3d": dict(in_channels=1, num_fmaps=2, fmaps_out=2, fmap_inc_factor=2,
                      downsample_factors=[[1, 2, 2]],
                      kernel_size_down=[[[3, 3, 3], [1, 3, 3]], [[1, 3, 3]] * 2],
                      kernel_size_up=[[[1, 3, 3]] * 2], input_pooling=[1, 2, 2]),
}


def _net(kwargs) -> CNNectomeUNet:
    torch.manual_seed(0)
    return CNNectomeUNet(**kwargs).double().eval()


def test_hand_computed_demo_grid():
    # z: only the coarse level convolves (2 x (3-1)), no pooling: min 5 = 4 + 1, step 1;
    # y/x: 18 -(4)-> 14 -pool-> 7 -(4)-> 3 -up-> 6 -(4)-> 2, offset -16, step 2
    assert unet_axes_grid({**CONFIGS["demo_3d"], "padding": "valid"}) == [
        (5, 1, -4), (18, 2, -16), (18, 2, -16)]
    assert unet_output_size(17, [2], [4, 4], [4]) is None  # 13 does not pool by 2
    # pooled by 2 (4): the same UNet on size / 2 (/ 4), its 2 output voxels interpolated
    # back to 2 * 2 (4 * 2) and cropped by 1 (2) per side: out 2 (4) from 36 (72)
    assert unet_axes_grid(CONFIGS["pooled_2d"]) == [(36, 4, 2 - 36), (72, 8, 4 - 72)]
    assert unet_output_size(38, [2], [4, 4], [4], pooling=2) is None  # 19 pools to 15
    assert unet_output_size(16, [2], [4, 4], [4]) is None  # 12 -> 6 -> 2 -> 4 -> 0 voxels


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_output_sizes_equal_the_network(name):
    kwargs = CONFIGS[name]
    net = _net(kwargs)
    grids = unet_axes_grid(kwargs)
    dims = len(grids)
    for n in range(3):
        shape = [lo + n * step for lo, step, _ in grids]
        with torch.no_grad():
            y = net(torch.zeros((1, 1, *shape), dtype=torch.float64))
        up = [2 if kwargs.get("upsample_factors") else 1] * dims
        assert list(y.shape[2:]) == [s * u + off for s, u, (_, _, off) in zip(shape, up, grids)]


@pytest.mark.parametrize("name", ["demo_3d", "two_levels_2d", "upsampled_2d", "pooled_2d",
                                  "pooled_3d"])
def test_accepted_sizes_are_the_tileable_ones(name):
    """Tiles at multiples of the step reproduce the big prediction exactly iff the size is
    accepted (along the first axis, the others at their smallest accepted size; valid
    padding only: with same padding no tile reproduces the borders)."""
    kwargs = CONFIGS[name]
    net = _net(kwargs)
    (lo, step, off), *others = unet_axes_grid(kwargs)
    up = 2 if kwargs.get("upsample_factors") else 1
    torch.manual_seed(1)
    big = torch.rand((1, 1, lo + 4 * step + 7, *(g[0] for g in others)), dtype=torch.float64)
    with torch.no_grad():
        full = net(big)
    for size in range(max(1, lo - step), lo + 2 * step + 1):
        accepted = unet_output_size(size, *_axis_args(kwargs, 0)) is not None
        assert accepted == ((size - lo) % step == 0 and size >= lo)
        tiles_match = True
        for start in (0, step, 2 * step):
            try:
                with torch.no_grad():
                    tile = net(big[:, :, start:start + size])
            except RuntimeError:  # too small for the network
                tiles_match = False
                break
            # the centred crop of the big prediction: size * up + offset voxels from start * up
            out = size * up + off
            ref = full[:, :, start * up:start * up + out]
            if out < 1 or ref.shape != tile.shape or not torch.allclose(ref, tile, atol=1e-9):
                tiles_match = False
                break
        assert tiles_match == accepted, f"size {size}: accepted {accepted}, tiles match {tiles_match}"


def _axis_args(kwargs, axis):
    same = kwargs.get("padding", "valid") == "same"
    factors = [f[axis] for f in kwargs["downsample_factors"]]
    d = [0 if same else sum(k[axis] - 1 for k in lvl) for lvl in kwargs["kernel_size_down"]]
    u = [0 if same else sum(k[axis] - 1 for k in lvl) for lvl in kwargs["kernel_size_up"]]
    upsample = 2 if kwargs.get("upsample_factors") else 1
    return factors, d, u, upsample, (kwargs.get("input_pooling") or [1] * 3)[axis]


def test_no_accepted_size_is_an_error():
    with pytest.raises(ValueError, match="no input size"):
        unet_size_grid([2], [4, 4], [4], limit=10)
