"""Input sizes a (CNNectome) UNet accepts, and the output size it gives, per axis.

Along one axis, with ``L`` levels, pooling factors ``f_0 .. f_{L-2}``, the summed kernel
overhang of level ``l``'s down convolutions ``d_l = sum(k - 1)`` (0 with same padding) and
of its up convolutions ``u_l``::

    s_0 = size;   t_l = s_l - d_l;   s_{l+1} = t_l / f_l       (t_l must divide by f_l)
    x_{L-1} = t_{L-1};   x_l = x_{l+1} * f_l - u_l             (l = L-2 .. 0)
    output = x_0 * prod(upsample factors)

With an input pooling ``p`` (``input_pooling``: average pooling before the UNet, linear
interpolation back after it, cropped by ``p // 2`` per side) the size must divide by ``p``,
``s_0 = size / p``, and the output is ``(x_0 * p - 2 * (p // 2)) * prod(upsample)``.

Every ``t_l`` and ``x_l`` must be >= 1, and the skip connection of level ``l`` (``t_l``
voxels) is cropped to ``x_{l+1} * f_l`` around its centre, so their difference must be even
(else the output is not centred on the input). The accepted sizes are then
``min + n * step`` with ``step = p * prod(f_l)`` (divisibility repeats with that period and
the sizes grow with the input), and the output size is ``input * prod(upsample) + offset``
(bioimage.io's ``ParameterizedSize`` and ``SizeReference``; Ronneberger et al. 2015
describe the same "valid" tiling constraint for the original U-Net).

A size the UNet accepts can still give an output off-centre on the input's voxel grid (an
odd total overhang, e.g. a kernel of even size): `unet_size_problem` says why a size is
unfit for training or prediction, `unet_nearest_sizes` finds the fit sizes around it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def unet_output_size(
    size: int,
    factors: Sequence[int],
    down_overhang: Sequence[int],
    up_overhang: Sequence[int],
    upsample: int = 1,
    pooling: int = 1,
) -> int | None:
    """Output size along one axis for input ``size``; None when the UNet does not accept it.

    ``factors``: pooling factor per level (L-1), ``down_overhang``: ``sum(k - 1)`` of the
    down convolutions per level (L), ``up_overhang``: the same for the up convolutions of
    levels 0 .. L-2; ``upsample``: product of the extra output upsampling factors.
    """
    return _walk(size, factors, down_overhang, up_overhang, upsample, pooling)[0]


def unet_size_problem(
    size: int,
    factors: Sequence[int],
    down_overhang: Sequence[int],
    up_overhang: Sequence[int],
    upsample: int = 1,
    pooling: int = 1,
) -> str:
    """Why the UNet cannot train or predict on ``size`` voxels along one axis ("" when it
    can; arguments as `unet_output_size`): not accepted, or its output ``out`` not centred
    on the input on the input's voxel grid, i.e. not ``(size * upsample - out) % (2 *
    upsample) == 0`` (the context ``(size - out / upsample) / 2`` a whole number of input
    voxels, as `dacapo.pipeline.model_geometry.ModelGeometry` needs)."""
    out, why = _walk(size, factors, down_overhang, up_overhang, upsample, pooling)
    if out is None:
        return why
    up = int(upsample)
    if (int(size) * up - out) % (2 * up):
        return f"its output of {out} voxels is not centred on the input voxel grid"
    return ""


def unet_nearest_sizes(
    size: int,
    factors: Sequence[int],
    down_overhang: Sequence[int],
    up_overhang: Sequence[int],
    upsample: int = 1,
    pooling: int = 1,
    limit: int = 100_000,
) -> tuple[int | None, int | None]:
    """``(below, above)``: the largest size < ``size`` and the smallest size > ``size`` (by
    at most ``limit``) for which `unet_size_problem` is ""; None where there is none. Both lie
    within ``step = pooling * prod(factors)`` of ``size`` once ``size >= min`` (the valid
    sizes repeat with that period, module docstring)."""
    args = (factors, down_overhang, up_overhang, upsample, pooling)

    def valid(n: int) -> bool:
        return not unet_size_problem(n, *args)

    size = int(size)
    below = next((n for n in range(size - 1, 0, -1) if valid(n)), None)
    above = next((n for n in range(size + 1, size + limit + 1) if valid(n)), None)
    return below, above


def _walk(
    size: int,
    factors: Sequence[int],
    down_overhang: Sequence[int],
    up_overhang: Sequence[int],
    upsample: int,
    pooling: int,
) -> tuple[int | None, str]:
    """``(output size, "")``, or ``(None, why)`` when the UNet does not accept ``size``."""
    levels = len(down_overhang)
    if len(factors) != levels - 1 or len(up_overhang) != levels - 1:
        raise ValueError(
            f"unet sizes: {levels} levels need {levels - 1} factors and up overhangs, got "
            f"{len(factors)} and {len(up_overhang)}"
        )
    p = int(pooling)
    if int(size) % p:
        return None, f"{size} is not a multiple of input_pooling {p}"
    s = int(size) // p
    skips = []
    for level in range(levels):
        s -= int(down_overhang[level])
        if s < 1:
            return None, f"the convolutions of level {level} leave no voxels"
        if level < levels - 1:
            skips.append(s)
            if s % factors[level]:
                return None, (f"level {level}'s {s} voxels do not divide by its "
                              f"downsampling factor {factors[level]}")
            s //= int(factors[level])
    for level in reversed(range(levels - 1)):
        s *= int(factors[level])
        if skips[level] < s:
            return None, (f"level {level}'s upsampled {s} voxels exceed its skip "
                          f"connection's {skips[level]}")
        if (skips[level] - s) % 2:
            return None, (f"level {level}'s skip connection of {skips[level]} voxels is "
                          f"cropped to {s}, not around its centre (an odd difference)")
        s -= int(up_overhang[level])
        if s < 1:
            return None, f"the up convolutions of level {level} leave no voxels"
    s = s * p - 2 * (p // 2)
    if s < 1:
        return None, "the output is empty"
    return s * int(upsample), ""


def unet_size_grid(
    factors: Sequence[int],
    down_overhang: Sequence[int],
    up_overhang: Sequence[int],
    upsample: int = 1,
    limit: int = 100_000,
    pooling: int = 1,
) -> tuple[int, int, int]:
    """``(min, step, offset)``: accepted sizes ``min + n * step`` (n >= 0), output size
    ``size * upsample + offset``. ValueError when no size up to ``limit`` is accepted."""
    step = math.prod(int(f) for f in factors) * int(pooling)
    for size in range(1, limit + 1):
        out = unet_output_size(size, factors, down_overhang, up_overhang, upsample, pooling)
        if out is not None:
            return size, step, out - size * int(upsample)
    raise ValueError(f"unet sizes: no input size up to {limit} is accepted")


def unet_axis_args(kwargs: dict, axis: int) -> tuple[list[int], list[int], list[int], int, int]:
    """``(factors, down_overhang, up_overhang, upsample, pooling)`` of `unet_output_size`
    along ``axis`` for `CNNectomeUNet` keyword arguments (``downsample_factors``,
    ``kernel_size_down``, ``kernel_size_up``, ``padding``, ``upsample_factors``,
    ``input_pooling``)."""
    same = kwargs.get("padding", "valid") == "same"
    dims = len(kwargs["kernel_size_down"][0][0])
    factors = [int(f[axis]) for f in kwargs["downsample_factors"]]
    d = [0 if same else sum(int(k[axis]) - 1 for k in level) for level in kwargs["kernel_size_down"]]
    u = [0 if same else sum(int(k[axis]) - 1 for k in level) for level in kwargs["kernel_size_up"]]
    up = math.prod(int(f[axis]) for f in kwargs.get("upsample_factors") or [])
    pool = int((kwargs.get("input_pooling") or [1] * dims)[axis])
    return factors, d, u, up, pool


def unet_axes_grid(kwargs: dict) -> list[tuple[int, int, int]]:
    """`unet_size_grid` per spatial axis for `CNNectomeUNet` keyword arguments
    (`unet_axis_args`)."""
    dims = len(kwargs["kernel_size_down"][0][0])
    grids = []
    for axis in range(dims):
        factors, d, u, up, pool = unet_axis_args(kwargs, axis)
        grids.append(unet_size_grid(factors, d, u, up, pooling=pool))
    return grids
