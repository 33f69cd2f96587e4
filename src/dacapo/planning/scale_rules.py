"""The scale a planned network works at (`dacapo.planning.rules.plan_architecture`).

A network on a coarser grid sees more context and more data per step for the same
multiply-adds; what it cannot do is resolve structures finer than that grid. The planner
asks the labels: the coarsest average pooling of the raw (in-plane on anisotropic data, on
every axis otherwise; factors `POOLING_CHOICES`) whose **round trip**
(`dacapo.ops.round_trip.round_trip_iou`: down by area fractions, back by linear
interpolation) keeps every label structure at IoU >= `ROUND_TRIP_IOU` — the upper bound of
what the coarse network, its output interpolated back, can score. The structures are what
the task must draw: the classes (one-hot), the mask (distance), or, for instance tasks (affinities,
inner distances), the boundaries between objects (where objects touch, one voxel thick:
they keep the full resolution).

Measured on the six real volumes (docs/quality.md, "A coarser grid for the network"):
the worst structure's round trip at 2x / 4x in-plane: organelles 0.977 / 0.922, ssTEM
membranes 0.976 / 0.916, LM nuclei mask 0.987 / 0.955; the boundaries of FIB-SEM neurons
0.855, confocal cells 0.817, LM nuclei 0.843, 2D nuclei 0.646 at 2x.
"""

from __future__ import annotations

import numpy as np

from dacapo.ops.round_trip import label_boundaries, round_trip_iou
from dacapo.ops.sections import anisotropic

#: the round trip of every structure keeps at least this IoU at the chosen pooling
ROUND_TRIP_IOU = 0.97
#: pooling factors tried, coarsest first
POOLING_CHOICES = (4, 2)


def pooled_axes(voxel_size) -> tuple[bool, ...]:
    """The axes a pooling coarsens: in-plane on `anisotropic` voxels, else all."""
    if anisotropic(voxel_size):
        return (False, True, True)
    return (True,) * len(voxel_size)


def structures(labels: np.ndarray, kind: str, stack: np.ndarray | None) -> list[np.ndarray]:
    """The label images whose round trip decides: a class stack's masks one by one, the
    class ids (one-hot), the mask (distance), or the boundaries
    between objects (affinities, inner distances)."""
    if stack is not None:
        return [m.astype(np.uint8) for m in stack]
    if kind in ("affinities", "inner_distance"):
        return [label_boundaries(labels)]
    if kind == "distance":
        return [(labels > 0).astype(np.uint8)]
    return [labels]


def round_trip_scores(images: list[np.ndarray], voxel_size) -> dict[int, float]:
    """Pooling factor -> the worst IoU of any label in ``images`` after its round trip
    (finer factors first; a factor is skipped once a finer one fails `ROUND_TRIP_IOU`, or
    where an image is smaller than its blocks)."""
    axes = pooled_axes(voxel_size)
    scores: dict[int, float] = {}
    for f in sorted(POOLING_CHOICES):
        factors = tuple(f if a else 1 for a in axes)
        if any(s < 2 * g for img in images for s, g in zip(img.shape, factors)):
            break
        worst = min(min(round_trip_iou(img, factors).values()) for img in images)
        scores[f] = worst
        if worst < ROUND_TRIP_IOU:
            break
    return scores


def pooling_choices(scores: dict[int, float], voxel_size) -> list[tuple[tuple[int, ...], str]]:
    """(input pooling per axis, the reason) from `round_trip_scores`, coarsest first: each
    factor whose round trip keeps `ROUND_TRIP_IOU`, then full resolution (the planner takes
    the first at which a valid UNet fits the data)."""
    axes = pooled_axes(voxel_size)
    tried = ", ".join(f"{f}x {v:.3f}" for f, v in sorted(scores.items())) or "too small to try"
    choices = []
    for f in POOLING_CHOICES:
        if scores.get(f, 0.0) >= ROUND_TRIP_IOU:
            pooling = tuple(f if a else 1 for a in axes)
            choices.append((pooling, (
                f"the raw average-pooled {pooling} before the network, its output interpolated "
                f"back: the coarsest scale whose label round trip keeps every structure at "
                f"IoU >= {ROUND_TRIP_IOU} ({tried}) and where a valid UNet fits the data")))
    why = (f"full resolution: no coarser scale keeps every label structure at round-trip IoU "
           f">= {ROUND_TRIP_IOU} ({tried})" if not choices else
           f"full resolution: no valid UNet fits the data on a coarser grid ({tried})")
    return [*choices, ((1,) * len(axes), why)]
