"""Flip test-time augmentation: the mean of the model's outputs over input flips.

With ``flips`` on, prediction averages ``flip⁻¹(model(flip(x)))`` over every combination of
flips of the in-plane axes (y, x: 4 passes); the z axis is left alone (anisotropic data is
not symmetric in z, and 8 passes would double the cost again). Only for tasks whose output
channels do not depend on direction (distances, class probabilities): an affinity channel
for offset (0, 1, 0) becomes the one for (0, -1, 0) under a y flip, so the Affinities task
refuses it (`problems`).
"""

from __future__ import annotations

from itertools import product

import numpy as np
import torch

#: tasks whose channels are direction-dependent
DIRECTIONAL_TASKS = ("AffinitiesTaskConfig",)


def flip_sets(dims: int) -> list[tuple[int, ...]]:
    """Tensor axes (batch and channel first) of each flip combination of the last two
    spatial axes, the identity first."""
    axes = [2 + dims - 2, 2 + dims - 1] if dims >= 2 else [2]
    return [tuple(a for a, on in zip(axes, mask) if on)
            for mask in product((False, True), repeat=len(axes))]


def forward(model, x, flips: bool = False):
    """``model(x)``, or its flip average (see the module docstring); ``x`` a torch tensor
    or a numpy array (for a `dacapo.pipeline.engines` forward function)."""
    if not flips:
        return model(x)

    def flip(a, axes):
        if isinstance(a, torch.Tensor):
            return torch.flip(a, axes)
        return np.ascontiguousarray(np.flip(a, axes))

    dims = x.ndim - 2
    total = None
    sets = flip_sets(dims)
    for axes in sets:
        xi = flip(x, axes) if axes else x
        y = model(xi)
        y = flip(y, axes) if axes else y
        total = y if total is None else total + y
    return total / len(sets)


def problems(run_config) -> list[str]:
    task = type(getattr(run_config, "task_config", None)).__name__
    if getattr(run_config, "test_time_flips", False) and task in DIRECTIONAL_TASKS:
        return [f"test_time_flips: not for a {task} (its channels change under flips)"]
    return []
