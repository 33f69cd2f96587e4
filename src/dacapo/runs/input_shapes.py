"""Whether a run's UNet can train and predict on its input shapes, checked before it starts.

The training input (``architecture_config.input_shape``) and the prediction input
(``input_shape + eval_shape_increase``) must each be a size the UNet accepts along every
axis, with its output centred on the input (`dacapo.ops.unet_sizes.unet_size_problem`);
a shape that is not gives one message naming the field, why, and the nearest valid shapes
smaller and larger (per axis, `unet_nearest_sizes`; the smallest valid shape when no
smaller one is). Architectures other than the CNNectome UNet (no ``unet_kwargs``) are not
checked here.
"""

from __future__ import annotations

from collections.abc import Sequence

from dacapo.experiments.architectures.architecture_config import ArchitectureConfig
from dacapo.ops.unet_sizes import unet_axis_args, unet_nearest_sizes, unet_size_problem

FIELD = "architecture_config"


def input_shape_problems(architecture: ArchitectureConfig) -> list[str]:
    """One message per input shape of ``architecture`` the UNet cannot use (empty: fine);
    the prediction shape is checked only when the training shape is valid."""
    unet_kwargs = getattr(architecture, "unet_kwargs", None)
    if unet_kwargs is None:
        return []
    try:
        kwargs = unet_kwargs()
        shape = tuple(int(s) for s in architecture.input_shape)
        axes = [unet_axis_args(kwargs, axis) for axis in range(len(shape))]
    except (IndexError, KeyError, TypeError, ValueError):  # reported by the model check
        return []
    problem = _shape_problem(shape, axes)
    if problem:
        why, below, above = problem
        return [f"{FIELD}.input_shape: {shape} is not a valid input of this UNet ({why}); "
                f"{_nearest('shape', below, above)}"]
    increase = getattr(architecture, "eval_shape_increase", None)
    if increase is None:
        return []
    eval_shape = tuple(int(s) for s in architecture.eval_input_shape)
    problem = _shape_problem(eval_shape, axes)
    if not problem:
        return []
    why, below, above = problem

    def minus(other: tuple[int, ...] | None) -> tuple[int, ...] | None:
        diff = None if other is None else tuple(o - s for o, s in zip(other, shape))
        return diff if diff is None or min(diff) >= 0 else None

    return [f"{FIELD}.eval_shape_increase: {tuple(int(i) for i in increase)} makes the "
            f"prediction input {eval_shape}, not a valid input of this UNet ({why}); "
            f"{_nearest('increase', minus(below), minus(above))}"]


def _shape_problem(shape: tuple[int, ...], axes: Sequence[tuple[list[int], list[int], list[int], int, int]]
                   ) -> tuple[str, tuple[int, ...] | None, tuple[int, ...] | None] | None:
    """None when ``shape`` is valid along every axis, else ``(why, nearest valid shape
    below, above)``: the invalid axes moved to their nearest valid sizes (None where one
    has none)."""
    reasons: dict[str, list[int]] = {}
    below: list[int | None] = list(shape)
    above: list[int | None] = list(shape)
    for axis, (size, args) in enumerate(zip(shape, axes)):
        why = unet_size_problem(size, *args)
        if why:
            reasons.setdefault(why, []).append(axis)
            below[axis], above[axis] = unet_nearest_sizes(size, *args)
    if not reasons:
        return None
    text = ", ".join(f"{_axes(a)}: {why}" for why, a in reasons.items())
    return text, _whole(below), _whole(above)


def _axes(axes: list[int]) -> str:
    """``axis 1``, ``axes 0 and 1``, ``axes 0, 1 and 2``."""
    if len(axes) == 1:
        return f"axis {axes[0]}"
    return f"axes {', '.join(map(str, axes[:-1]))} and {axes[-1]}"


def _whole(sizes: list[int | None]) -> tuple[int, ...] | None:
    """The sizes as a shape; None when one is None."""
    whole = tuple(s for s in sizes if s is not None)
    return whole if len(whole) == len(sizes) else None


def _nearest(what: str, below: tuple[int, ...] | None, above: tuple[int, ...] | None) -> str:
    """``the nearest valid shapes are A and B``; ``the smallest valid shape is B`` when no
    smaller one is valid."""
    if below is not None and above is not None:
        return f"the nearest valid {what}s are {below} and {above}"
    if above is not None:
        return f"the smallest valid {what} is {above}"
    if below is not None:
        return f"the nearest valid {what} is {below}"
    return f"no {what} is valid along every axis"
