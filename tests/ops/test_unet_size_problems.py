"""Why a UNet cannot use an input size along one axis, and the nearest sizes it can
(`dacapo.ops.unet_sizes.unet_size_problem`, `unet_nearest_sizes`)."""

from __future__ import annotations

from dacapo.ops.unet_sizes import (
    unet_axis_args,
    unet_nearest_sizes,
    unet_output_size,
    unet_size_grid,
    unet_size_problem,
)

# 3 downsampling levels by 2, two 3-wide convolutions per level: 92 -(4)-> 88 -> 44 -(4)->
# 40 -> 20 -(4)-> 16 -> 8 -(4)-> 4 -> 8 -(4)-> 4 -> 8 -(4)-> 4 -> 8 -(4)-> 4; step 8
THREE_LEVELS = ([2, 2, 2], [4, 4, 4, 4], [4, 4, 4])


def test_why_and_the_nearest_sizes():
    assert unet_size_problem(92, *THREE_LEVELS) == ""
    assert unet_size_problem(81, *THREE_LEVELS) == (
        "level 0's 77 voxels do not divide by its downsampling factor 2")
    assert unet_size_problem(94, *THREE_LEVELS) == (
        "level 1's 41 voxels do not divide by its downsampling factor 2")
    assert unet_nearest_sizes(81, *THREE_LEVELS) == (None, 92)  # nothing smaller is valid
    assert unet_nearest_sizes(97, *THREE_LEVELS) == (92, 100)
    assert unet_nearest_sizes(100, *THREE_LEVELS) == (92, 108)
    assert unet_size_problem(10, [2], [4, 4], [4], pooling=4) == (
        "10 is not a multiple of input_pooling 4")


def test_the_valid_sizes_are_the_grid_when_every_overhang_is_even():
    lo, step, _ = unet_size_grid(*THREE_LEVELS)
    for size in range(1, 200):
        on_grid = size >= lo and (size - lo) % step == 0
        assert (unet_size_problem(size, *THREE_LEVELS) == "") == on_grid, size


def test_an_accepted_size_off_centre_is_a_problem():
    """A 2-wide convolution (overhang 1): the output is half a voxel off the input's centre
    for every size the network accepts, so no size is valid."""
    args = ([2], [1, 2], [2])
    assert unet_output_size(11, *args) == 4  # accepted: 11 -> 10 -> 5 -> 3 -> 6 -> 4
    assert unet_size_problem(11, *args) == (
        "its output of 4 voxels is not centred on the input voxel grid")
    assert unet_nearest_sizes(11, *args, limit=200) == (None, None)


def test_axis_args_of_unet_kwargs():
    kwargs = {"downsample_factors": [[1, 2, 2]],
              "kernel_size_down": [[[1, 3, 3]] * 2, [[3, 3, 3]] * 2],
              "kernel_size_up": [[[1, 3, 3]] * 2], "upsample_factors": [[1, 2, 2]],
              "input_pooling": [1, 1, 2]}
    assert unet_axis_args(kwargs, 0) == ([1], [0, 4], [0], 1, 1)
    assert unet_axis_args(kwargs, 2) == ([2], [4, 4], [4], 2, 2)
    assert unet_axis_args({**kwargs, "padding": "same"}, 2) == ([2], [0, 0], [0], 2, 2)
