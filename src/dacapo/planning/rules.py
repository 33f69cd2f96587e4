"""The data fingerprint and the network rules of `dacapo.planning.planner` (see its docstring):
voxel size, labelled shapes, raw percentiles, object widths and volumes; the valid UNet
with the most output voxels whose estimated step time fits the budget."""

from __future__ import annotations

import math

import attr
import numpy as np
from funlib.geometry import Coordinate
from scipy import ndimage

from dacapo.io.arrays import read_array
from dacapo.ops.normalize import dark_fraction, intensity_statistics, sample_values
from dacapo.ops.planning import (
    eval_increase,
    level_layout,
    object_widths,
    unet_shapes,
    weighted_median,
)
from dacapo.ops.section_labels import sections_apart
from dacapo.ops.sections import SECTION_RATIO
from dacapo.planning.cost_model import STEP_OVERHEAD, data_seconds, network_costs, step_seconds
from dacapo.planning.scale_rules import pooling_choices, round_trip_scores, structures

#: z voxel >= this x the in-plane one: a 2D network (one section at a time); the same
#: ratio by which the augmentations treat an axis as sections (`dacapo.training.augment`)
TWO_D_RATIO = SECTION_RATIO
#: a 2D network's first convolution also sees this many neighbouring sections on each side
#: (a (1 + 2·n, 3, 3) kernel; the rest of the network is 2D, its output one section)
SECTION_CONTEXT = 1
#: at most this many pooling levels (CPU budget)
MAX_LEVELS = 3
#: the bottom of the UNet keeps at least this many voxels per pooled axis (valid convs)
MIN_BOTTOM = 4
MIN_OUTPUT = 8  #: a depth's output voxels per segmented axis, at least (`choose_levels`)
#: batch norm is planned unless at least this fraction of the raw is dark (within
#: `DARK_MARGIN` of its dynamic range above the lower percentile: `ops.normalize.
#: dark_fraction`): a crop's batch statistics then depend on how much of it is empty, and
#: in eval mode the background turns into object (2D GOWT1 nuclei, 85 % dark; as a camera
#: gives them, with offset and noise, F1@0.5 0.13 with batch norm, 0.89 without). The other
#: real volumes are 1-12 % dark (docs/quality.md, "The planner on data as another lab ...")
DARK_RAW = 0.4
DARK_MARGIN = 0.05
#: feature maps of the first level (x2 per level): a 2D network affords more per voxel; on
#: the membranes 24 beat 12 at the same budget (docs/quality.md, ablations)
FMAPS_2D = 24
FMAPS_3D = 12
TASK_KINDS = ("affinities", "distance", "inner_distance", "one_hot")


# --------------------------------------------------------------------------
# fingerprint
# --------------------------------------------------------------------------


@attr.s(auto_attribs=True)
class Fingerprint:
    """What the planner knows about the training data."""

    voxel_size: Coordinate
    shapes: list[tuple[int, ...]]
    raw_low: float
    raw_high: float
    raw_mean: float
    raw_std: float
    dtype: str
    label_values: list[int]
    foreground_fraction: float
    object_width: float | None  # world units; None without objects
    object_volume: float | None  # voxels (voxel-weighted median)
    num_objects: int
    class_fractions: dict = attr.Factory(dict)  # one-hot: class id -> voxel fraction
    dark_raw_fraction: float = 0.0  # raw values dark (`ops.normalize.dark_fraction`)
    #: per training gt, its sections (first-axis indices of the gt) labelled apart from
    #: their neighbours (`dacapo.ops.section_labels`); only for tasks whose targets follow
    #: object ids across sections (affinities, inner distances) on 3D labels
    sections_apart: list = attr.Factory(list)
    #: pooling factor -> worst label round-trip IoU (`dacapo.planning.scale_rules`)
    round_trip: dict = attr.Factory(dict)

    @property
    def batch_norm(self) -> bool:
        """Batch norm unless much of the raw is dark background (`DARK_RAW`)."""
        return self.dark_raw_fraction < DARK_RAW

    @property
    def smallest_shape(self) -> tuple[int, ...]:
        return tuple(min(s[i] for s in self.shapes) for i in range(len(self.voxel_size)))


def _class_stack(labels: np.ndarray, dims: int, num_classes: int,
                 kind: str) -> np.ndarray | None:
    """``(C, *spatial)`` binary masks of a class stack (a group of class arrays) or of the
    class ids ``1..C`` of a multi-class distance GT; None for a single label array (a
    one-hot GT of class ids ``0..C-1`` included: counted id by id)."""
    if labels.ndim == dims + 1:
        return labels != 0
    if num_classes > 1 and kind != "one_hot":
        return np.stack([labels == i + 1 for i in range(num_classes)])
    return None


def fingerprint(gt_arrays, raw_arrays, kind: str, lower: float = 0.5,
                upper: float = 99.5, num_classes: int = 1) -> Fingerprint:
    """The `Fingerprint` of opened training arrays (funlib Arrays, raw and GT pairs).

    A GT with a leading class axis (a group of class arrays) counts class ``i`` where its
    array is non-zero; a distance task of ``num_classes`` > 1 channels on class ids
    ``1..C`` measures the objects (components) of every class."""

    vs = Coordinate(raw_arrays[0].voxel_size)
    for r in raw_arrays:
        if Coordinate(r.voxel_size) != vs:
            raise ValueError(f"plan: raw voxel sizes differ ({tuple(vs)} vs {tuple(r.voxel_size)}); "
                             "plan one voxel size at a time")
    samples, shapes, values = [], [], set()
    widths, volumes = [], []
    fg = total = 0
    class_counts: dict[int, int] = {}
    apart: list[list[int]] = []
    drawn: list[np.ndarray] = []  # the structures the task draws (`scale_rules.structures`)
    for raw, gt in zip(raw_arrays, gt_arrays):
        apart.append([])
        roi = raw.roi.intersect(gt.roi)
        if roi.empty:
            raise ValueError(f"plan: raw ROI {raw.roi} and gt ROI {gt.roi} do not overlap")
        shapes.append(tuple(int(s) for s in roi.shape / vs))
        samples.append(sample_values(read_array(raw, roi), 2_000_000))
        labels = read_array(gt, roi)
        stack = _class_stack(labels, vs.dims, num_classes, kind)
        drawn += structures(labels, kind, stack)
        if stack is not None and kind == "one_hot":  # class i where its array is set
            values.update(range(len(stack)))
            for i, mask in enumerate(stack):
                class_counts[i] = class_counts.get(i, 0) + int(np.count_nonzero(mask))
            fg += int(np.count_nonzero(stack.any(axis=0)))
            total += stack[0].size
            widths.append(np.zeros(0))
            volumes.append(np.zeros(0))
            continue
        ids, n = np.unique(labels, return_counts=True)
        values.update(int(v) for v in ids[:1000])
        fg += int(np.count_nonzero(labels))
        total += labels[0].size if stack is not None and labels.ndim > vs.dims else labels.size
        if stack is not None:  # multi-class distance: the components of every class
            parts = [object_widths(ndimage.label(m)[0], vs) for m in stack]
            w = np.concatenate([x for x, _ in parts])
            v = np.concatenate([y for _, y in parts])
        elif kind in ("affinities", "inner_distance"):
            w, v = object_widths(labels, vs)
            if labels.ndim == 3:  # indices in the gt, which may begin before this ROI
                first = (roi.begin[0] - gt.roi.begin[0]) // vs[0]
                apart[-1] = [first + z for z in sections_apart(labels)]
        elif kind == "distance":
            w, v = object_widths(ndimage.label(labels > 0)[0], vs)
        else:
            w, v = np.zeros(0), np.zeros(0)
            for i, c in zip(ids[:1000].tolist(), n[:1000].tolist()):
                class_counts[int(i)] = class_counts.get(int(i), 0) + int(c)
        widths.append(w)
        volumes.append(v)
    stats = intensity_statistics(samples, lower, upper)
    if not stats["high"] > stats["low"]:
        raise ValueError(f"plan: the training raw is constant between its {lower:g} and "
                         f"{upper:g} percentiles ({stats['low']:g}): nothing to learn from")
    w, v = np.concatenate(widths), np.concatenate(volumes)
    return Fingerprint(
        voxel_size=vs, shapes=shapes, raw_low=stats["low"], raw_high=stats["high"],
        raw_mean=stats["mean"], raw_std=stats["std"], dtype=str(raw_arrays[0].dtype),
        label_values=sorted(values), foreground_fraction=fg / max(1, total),
        object_width=weighted_median(w, v) if w.size else None,
        object_volume=weighted_median(v, v) if v.size else None,
        num_objects=int(w.size),
        class_fractions={k: c / max(1, total) for k, c in sorted(class_counts.items())},
        dark_raw_fraction=dark_fraction(np.concatenate([np.ravel(x) for x in samples]),
                                     stats["low"], stats["high"], DARK_MARGIN),
        sections_apart=apart, round_trip=round_trip_scores(drawn, vs),
    )


# --------------------------------------------------------------------------
# network
# --------------------------------------------------------------------------


@attr.s(auto_attribs=True)
class ArchitecturePlan:
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    factors: list[tuple[int, ...]]
    kernels_down: list[list[tuple[int, ...]]]
    kernels_up: list[list[tuple[int, ...]]]
    num_fmaps: int
    fmap_inc_factor: int
    eval_shape_increase: tuple[int, ...]
    step_seconds: float
    notes: dict[str, str]
    sections: bool = False  # a network of one output section at a time
    input_pooling: tuple[int, ...] = ()  # the raw's average pooling before the UNet
    split_threads: bool = False  # the data worker keeps a core (`cost_model.step_seconds`)


def plan_architecture(fp: Fingerprint, kind: str, seconds_per_step: float,
                      num_fmaps: int | None = None, batch_size: int = 2,
                      padding=None, precision: str = "fp32") -> ArchitecturePlan:
    """Levels, kernels and the largest input shape within ``seconds_per_step`` of training
    in ``precision``; ``num_fmaps`` None: `FMAPS_2D` for a 2D network, `FMAPS_3D` for a 3D
    one; ``padding``: the task's target context in GT voxels per axis (`data_seconds`)."""
    vs = fp.voxel_size
    dims = vs.dims
    notes: dict[str, str] = {}
    ratio = vs[0] / min(vs[1:]) if dims == 3 else 1.0
    two_d = dims == 3 and ratio >= TWO_D_RATIO
    padding = tuple(padding) if padding is not None else (0,) * dims
    if two_d:  # a network of sections: one output section, its targets from it alone
        padding = (0,) + padding[1:]
    # a budget of seconds buys fewer, not impossible, steps: at least twice the fixed cost,
    # and at least 1.5x the data of a 1-voxel output (the targets' context alone)
    floor = data_seconds(kind, (1,) * dims, (1,) * dims, padding, batch_size) + STEP_OVERHEAD
    if seconds_per_step < 1.5 * floor:
        notes["step_floor"] = (f"the budget share {seconds_per_step:.2f} s per step is below "
                               f"1.5x the data of the smallest crop ({floor:.2f} s: the targets' "
                               f"context {padding} voxels per side): fewer steps of "
                               f"{1.5 * floor:.2f} s")
    seconds_per_step = max(seconds_per_step, 2 * STEP_OVERHEAD, 1.5 * floor)
    if num_fmaps is None:
        num_fmaps = FMAPS_2D if two_d or dims == 2 else FMAPS_3D
    data = fp.smallest_shape
    gmac_cost, voxel_cost = network_costs(kind, two_d or dims == 2, precision, dims)
    depth = 1 + 2 * SECTION_CONTEXT
    z_choices = [depth] if two_d else list(range(4, min(data[0], 96) + 1))
    # the axes segmented (a network of sections outputs one section: not z)
    seen = [a for a in range(dims) if not (two_d and a == 0)]

    def largest(pool, f, d, u):
        """The valid input with the most output voxels (world extent at most 2:1 between
        the segmented axes) whose step fits ``seconds_per_step``; None if none."""
        best = None
        for z in z_choices if dims == 3 else [None]:
            for xy in range(8, 513):  # on the network's (pooled) grid
                coarse = ((z,) if dims == 3 else ()) + (xy,) * (2 if dims == 3 else dims)
                shape = tuple(c * p for c, p in zip(coarse, pool))
                res = unet_shapes(shape, f, d, u, num_fmaps, pooling=pool)
                if res is None:
                    continue
                out, macs = res
                step, split = min((step_seconds(kind, macs, shape, out, gmac_cost, voxel_cost,
                                                batch_size, padding, split=s), s) for s in (False, True))
                if step > seconds_per_step or any(o > s for o, s in zip(out, data)):
                    break  # bigger crops only cost more
                if any(out[a] < MIN_BOTTOM for a in seen):
                    continue
                extent = [out[a] * vs[a] for a in seen]
                if max(extent) > 2 * min(extent):
                    continue
                if best is None or math.prod(out) > best[0]:
                    best = (float(math.prod(out)), shape, out, f, d, u, step, split)
        return best

    # the coarsest grid the labels allow where a valid UNet fits the data, else finer
    for pool, notes["input_pooling"] in pooling_choices(fp.round_trip, vs):  # the note too
        net_vs = Coordinate(v * p for v, p in zip(vs, pool))  # the grid the UNet works on
        factors, kd, ku, why = level_layout(net_vs, MAX_LEVELS, fp.object_width, two_d)
        if two_d and depth > 1:  # the first convolution sees the neighbouring sections
            kd = [list(level) for level in kd]
            kd[0][0] = (depth,) + tuple(kd[0][0][1:])
        per_levels = {}
        for levels in range(len(factors), 0, -1):
            found = largest(pool, factors[:levels], kd[: levels + 1], ku[:levels])
            if found is not None:
                per_levels[levels] = found
        if per_levels:
            break
    best = choose_levels(per_levels, vs, fp.object_width)
    if best is None:
        raise ValueError(
            f"plan: no valid UNet fits the training data (smallest labelled region "
            f"{data} voxels) within {seconds_per_step:.2f} s per step; give more budget"
        )
    _, shape, out, f, d, u, step, split = best
    levels = len(f)
    if two_d:
        notes["network"] = (f"2D network: z voxel {vs[0]} is {ratio:.1f}x the in-plane {min(vs[1:])} "
                            f"(>= {TWO_D_RATIO}): sections are segmented one at a time"
                            + (f", the first convolution seeing {SECTION_CONTEXT} neighbouring "
                               "section(s) on each side" if depth > 1 else ""))
    elif dims == 2:
        notes["network"] = "2D network for 2D images: convolutions and pooling over y and x"
    else:
        notes["network"] = ("3D network; convolutions are 2D (1,3,3) and pooling in-plane on levels "
                            "whose z voxel is >= 2x the in-plane one (nnU-Net's anisotropy rule)")
    notes["levels"] = (f"{levels} pooling level(s): "
                       + ("; ".join(why) if why else f"at most {MAX_LEVELS} on a CPU budget")
                       + f"; bottom feature map >= {MIN_BOTTOM} voxels; "
                       + _depth_reason(shape, out, vs, fp.object_width))
    notes["input_shape"] = (f"largest valid input whose output ({', '.join(map(str, out))}) fits the "
                            f"smallest labelled region {data} and whose step takes ~{step:.2f} s "
                            f"(budget share {seconds_per_step:.2f} s)")
    increase = tuple(0 if (two_d and i == 0) else pool[i] * eval_increase(shape[i] // pool[i], f, i)
                     for i in range(dims))
    return ArchitecturePlan(shape, out, f, d, u, num_fmaps, 2, increase, step, notes,
                            sections=two_d, input_pooling=pool, split_threads=split)


def choose_levels(per_levels: dict, voxel_size, object_width: float | None):
    """Of the best shape per number of levels (``(output voxels, input, output, ...)``)
    with ≥ `MIN_OUTPUT` output voxels per segmented axis (a depth that covers the objects
    left a 4×4 output on a small budget; none such: the largest output), the fewest levels
    whose context, ``(input − output) / 2`` per side in world units, covers half the typical
    object width on every axis; else, or without objects, the most levels among them."""
    if not per_levels:
        return None
    usable = {k: p for k, p in per_levels.items()
              if all(o >= MIN_OUTPUT for o in p[2] if o > 1)}
    if not usable:
        most = max(per_levels, key=lambda k: per_levels[k][0])
        usable = {most: per_levels[most]}
    if object_width is not None:
        for levels in sorted(usable):
            shape, out = usable[levels][1], usable[levels][2]
            if min(_context(shape, out, voxel_size)) >= object_width / 2:
                return usable[levels]
    return usable[max(usable)]


def _context(shape, out, voxel_size) -> list[float]:
    """Context per side (world units) on the axes the network segments (output > 1)."""
    return [(i - o) / 2 * v for i, o, v in zip(shape, out, voxel_size) if o > 1]


def _depth_reason(shape, out, voxel_size, object_width: float | None) -> str:
    context = _context(shape, out, voxel_size)
    text = f"context {', '.join(f'{c:g}' for c in context)} per side"
    if object_width is not None and min(context) >= object_width / 2:
        return (f"the fewest levels whose {text} covers half the typical object width "
                f"{object_width:.0f} (each level costs output voxels)")
    fits = (f"the deepest that fits with an output of at least {MIN_OUTPUT} voxels per axis"
            if all(o >= MIN_OUTPUT for o in out if o > 1) else
            f"the largest output that fits (no depth has {MIN_OUTPUT} output voxels per axis)")
    return f"{fits} ({text}" + (f"; none of these covers half the typical object width "
                                f"{object_width:.0f})" if object_width is not None else ")")


def guess_modality(fp: Fingerprint, units_nm: bool = True) -> str:
    """'em' when the in-plane voxel is at most 30 nm, else 'lm'."""
    inplane = min(fp.voxel_size[1:]) if fp.voxel_size.dims == 3 else min(fp.voxel_size)
    return "em" if inplane <= 30 else "lm"
