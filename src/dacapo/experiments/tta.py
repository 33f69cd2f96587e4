"""Flip test-time augmentation: the mean of the model's outputs over input flips.

With ``test_time_flips`` on, prediction averages ``flip⁻¹(model(flip(x)))`` over every
combination of flips of the in-plane axes (y, x: 4 passes); the z axis is left alone
(anisotropic data is not symmetric in z, and 8 passes would double the cost again).

Distances and class probabilities do not depend on direction: the flipped-back output is
averaged as it is. An affinity channel does: under a flip of the axes ``S`` the channel of
offset ``o`` holds, at voxel ``q``, the link of ``q`` and ``q + o*`` (``o*``: ``o`` negated
on ``S``). That is the channel of ``o*`` at ``q`` when the neighbourhood has ``o*``, or the
channel of ``p = -o*`` at ``q - p`` (``A_p(r) = Y(r + p)``: for an axis-aligned offset, the
same channel shifted by ``p``). A voxel whose shifted value falls outside the block is
averaged over the passes that have it (so within ``|p|`` voxels of a block's far side the
mean is over fewer passes). LSD channels are not mapped: a run with LSDs refuses flips.
"""

from __future__ import annotations

from itertools import product

import attr
import numpy as np
import torch

#: tasks whose channels are direction-dependent
DIRECTIONAL_TASKS = ("AffinitiesTaskConfig",)


@attr.s(frozen=True)
class FlipPlan:
    """Flip TTA of one run: ``offsets`` None (every channel direction-free) or the affinity
    offset of each output channel."""

    offsets: tuple[tuple[int, ...], ...] | None = attr.ib(default=None)


def directional(task_config) -> bool:
    """Whether the task's output channels depend on direction (`DIRECTIONAL_TASKS`)."""
    return type(task_config).__name__ in DIRECTIONAL_TASKS


def _offsets(task_config) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(v) for v in o) for o in task_config.neighborhood)


def flip_plan(run_config) -> FlipPlan | None:
    """The run's flip TTA: None when ``test_time_flips`` is off."""
    if not getattr(run_config, "test_time_flips", False):
        return None
    task = getattr(run_config, "task_config", None)
    return FlipPlan(_offsets(task)) if directional(task) else FlipPlan()


def flip_sets(dims: int) -> list[tuple[int, ...]]:
    """Tensor axes (batch and channel first) of each flip combination of the last two
    spatial axes, the identity first."""
    axes = [2 + dims - 2, 2 + dims - 1] if dims >= 2 else [2]
    return [tuple(a for a, on in zip(axes, mask) if on)
            for mask in product((False, True), repeat=len(axes))]


def forward_passes(dims: int, flips: bool) -> int:
    """Forward passes of one prediction: one per `flip_sets` with ``test_time_flips``,
    else one."""
    return len(flip_sets(dims)) if flips else 1


def channel_map(offsets, spatial_axes) -> list[tuple[int, tuple[int, ...]]] | None:
    """For each channel of a pass flipped on ``spatial_axes``: (the channel it gives, the
    shift ``p`` with ``A(r) = Y(r + p)``); None when an offset's image is not in
    ``offsets`` (see the module docstring)."""
    index = {o: c for c, o in enumerate(offsets)}
    out = []
    for o in offsets:
        star = tuple(-v if i in spatial_axes else v for i, v in enumerate(o))
        minus = tuple(-v for v in star)
        if star in index:
            out.append((index[star], (0,) * len(o)))
        elif minus in index:
            out.append((index[minus], minus))
        else:
            return None
    return out


def _shift_into(total, count, y, shift) -> None:
    """``total[r] += y[r + shift]`` and ``count[r] += 1`` where ``r + shift`` is inside."""
    dst, src = [], []
    for k, n in zip(shift, y.shape):
        dst.append(slice(max(-k, 0), n - max(k, 0)))
        src.append(slice(max(k, 0), n - max(-k, 0)))
    total[tuple(dst)] += y[tuple(src)]
    count[tuple(dst)] += 1


def _flip(a, axes):
    if not axes:
        return a
    if isinstance(a, torch.Tensor):
        return torch.flip(a, axes)
    return np.ascontiguousarray(np.flip(a, axes))


def _affinity_mean(outputs, sets, offsets):
    """The mean of flipped-back affinity outputs, each channel mapped (`channel_map`)."""
    was_torch = isinstance(outputs[0], torch.Tensor)
    ys = [np.asarray(y.detach().cpu().numpy() if was_torch else y, dtype=np.float32)
          for y in outputs]
    if ys[0].shape[1] != len(offsets):
        raise ValueError(f"flip TTA: {ys[0].shape[1]} output channels for "
                         f"{len(offsets)} affinity offsets")
    total = np.zeros(ys[0].shape[1:], np.float32)
    count = np.zeros(ys[0].shape[1:], np.float32)
    for y, axes in zip(ys, sets):
        mapping = channel_map(offsets, {a - 2 for a in axes})
        if mapping is None:
            raise ValueError(f"flip TTA: the offsets {offsets} are not closed under flips")
        for c, (target, shift) in enumerate(mapping):
            _shift_into(total[target], count[target], y[0, c], shift)
    mean = (total / count)[None]
    return torch.from_numpy(mean) if was_torch else mean


def forward(model, x, flips: FlipPlan | None = None):
    """``model(x)``, or its flip average (see the module docstring); ``x`` a torch tensor
    or a numpy array (for a `dacapo.pipeline.engines` forward function)."""
    if flips is None:
        return model(x)
    sets = flip_sets(x.ndim - 2)
    outputs = [_flip(model(_flip(x, axes)), axes) for axes in sets]
    if flips.offsets is not None:
        return _affinity_mean(outputs, sets, flips.offsets)
    total = outputs[0]
    for y in outputs[1:]:
        total = total + y
    return total / len(sets)


def problems(run_config) -> list[str]:
    """Why the run's ``test_time_flips`` cannot be done (`task_problems`)."""
    if not getattr(run_config, "test_time_flips", False):
        return []
    return task_problems(getattr(run_config, "task_config", None))


def task_problems(task) -> list[str]:
    """Why flips of this task config's output cannot be mapped back: LSD channels, or
    affinity offsets whose flipped images are not in the neighbourhood (e.g. ``(0, 1, 1)``
    without ``(0, 1, -1)``); empty when they can."""
    if not directional(task):
        return []
    if getattr(task, "lsds", False):
        return [f"test_time_flips: not for a {type(task).__name__} with lsds (LSD channels "
                "change under flips)"]
    offsets = _offsets(task)
    dims = len(offsets[0]) if offsets else 0
    for axes in flip_sets(dims):
        if channel_map(offsets, {a - 2 for a in axes}) is None:
            return [f"test_time_flips: the neighborhood {[list(o) for o in offsets]} is not "
                    "closed under in-plane flips (add each offset's mirror image)"]
    return []
