"""The planner's task and augmentation rules (`dacapo.planning.planner`): the task to plan
and its GT rules (checked before planning), task parameters from the object widths and
class fractions of the data fingerprint, the fields its post-processor does not read;
augmentations by modality."""

from __future__ import annotations

from typing import Any

import attr
from funlib.geometry import Coordinate

from dacapo.errors import InputError
from dacapo.experiments.tasks import (
    AffinitiesTaskConfig,
    DistanceTaskConfig,
    InnerDistanceTaskConfig,
    OneHotTaskConfig,
    TaskConfig,
)
from dacapo.experiments.tasks.inner_distance_task import INNER_DISTANCE_THRESHOLDS
from dacapo.experiments.tasks.task_config import GTRules
from dacapo.experiments.trainer_config import AugmentConfig
from dacapo.ops.planning import round_2
from dacapo.ops.sections import anisotropic
from dacapo.planning.rules import Fingerprint

#: fields of an affinities task read only with ``lsds`` on: a plan without LSDs does not
#: write them
LSD_FIELDS = ("num_lsd_voxels", "downsample_lsds", "lsds_to_affs_weight_ratio",
              "lsd_weight_clipmin", "lsd_weight_clipmax")
#: fields of an affinities task that only the other post-processor reads
#: (`dacapo.experiments.tasks.affinities_task`): a plan does not write them
UNREAD_BY_POST_PROCESSOR = {
    "agglomeration": ("min_fragment_sizes", "mws_biases", "mws_long_range_bias_offset"),
    "mutex_watershed": ("agglomeration_thresholds", "agglomeration_quantile",
                        "fragments_seed_distance", "agglomeration_db_url"),
}
#: objects smaller than this fraction of the typical object volume are removed as specks
SPECK_FRACTION = 0.1
#: one-hot classes all covering at least this fraction of the voxels are trained with plain
#: cross-entropy; a rarer class gets class-balanced weights
BALANCE_BELOW = 0.1


def task_to_plan(kind: str, classes: list[str] | None = None,
                 channel: str | None = None) -> tuple[TaskConfig, GTRules]:
    """The task config ``plan_task`` will plan for ``kind`` before its numbers are known,
    and the rules its GT must follow: the data are checked with them before planning
    (`dacapo.runs.verify.split_problems`, as verify and train check them). Without
    ``classes`` a one-hot task takes its classes from the GT: ids are not bounded."""
    if kind == "one_hot":
        task = OneHotTaskConfig(name="one_hot", classes=classes or ["class_0", "class_1"])
        rules = task.gt_rules()
        return task, rules if classes else attr.evolve(rules, num_classes=None, channel_names=())
    if kind == "affinities":  # offsets are planned for the data's dims
        task = AffinitiesTaskConfig(name="affinities", neighborhood=[])
    else:
        cls = DistanceTaskConfig if kind == "distance" else InnerDistanceTaskConfig
        task = cls(name=kind, channels=_channels(kind, classes, channel), clip_distance=1,
                   tol_distance=1)
    return task, task.gt_rules()


def _channels(kind: str, classes: list[str] | None, channel: str | None) -> list[str]:
    """A distance task's channels: one per class (``--classes``), else ``channel``."""
    if kind == "distance" and classes:
        return list(classes)
    return [channel or "object"]


def plan_task(fp: Fingerprint, kind: str, classes: list[str] | None = None,
              channel: str | None = None,
              instance_classes: list[str] | None = None) -> tuple[Any, dict[str, str]]:
    """The task config of ``kind`` planned from ``fp``, and a note per planned field;
    ``instance_classes`` (one-hot, distance): per-class post-processing and CellMap scores."""
    task, notes = _plan_task(fp, kind, classes, channel)
    if instance_classes is None:
        return task, notes
    if kind not in ("one_hot", "distance"):
        raise InputError(f"--instance-classes: only for one_hot and distance tasks, not {kind}")
    notes["instance_classes"] = ("segmented into objects (connected components, sizes swept); "
                                 "every other class semantic; one output and CellMap scores "
                                 "per class")
    return attr.evolve(task, instance_classes=list(instance_classes)), notes


def _plan_task(fp: Fingerprint, kind: str, classes: list[str] | None,
               channel: str | None) -> tuple[Any, dict[str, str]]:
    vs = fp.voxel_size
    notes: dict[str, str] = {}
    if kind == "one_hot":
        n = max(fp.label_values) + 1 if fp.label_values else 2
        names = classes or [f"class_{i}" for i in range(n)]
        if len(names) != n:
            raise ValueError(f"plan: --classes names {len(names)} classes, the GT holds ids 0..{n - 1}")
        notes["classes"] = f"the GT holds class ids {fp.label_values}"
        rarest = min(fp.class_fractions.values()) if fp.class_fractions else 0.0
        balance = rarest < BALANCE_BELOW
        notes["balance_classes"] = (
            f"the rarest class covers {100 * rarest:.1f} % of the training voxels "
            + (f"(< {100 * BALANCE_BELOW:.0f} %): class-balanced weights so that it is learnt"
               if balance else f"(>= {100 * BALANCE_BELOW:.0f} %): plain cross-entropy, so the "
               "argmax is the most likely class (balanced weights widen the rare class: "
               "membranes interior IoU -0.04 on average, docs/quality.md)"))
        if not balance:
            return OneHotTaskConfig(name="one_hot", classes=names, balance_classes=False), notes
        fractions = [round(fp.class_fractions.get(i, 0.0), 5) for i in range(n)]
        notes["class_fractions"] = ("the training GT's class fractions: with per-class "
                                    "post-processing the argmax is also swept corrected by "
                                    "them, undoing the balancing that widens rare classes")
        notes["dice_weight"] = ("rare classes: a soft Dice term beside the cross-entropy "
                                "(nnU-Net's CE + Dice; every class counts alike, whatever its "
                                "size): organelles' synapses +0.047 IoU on two seeds, glia "
                                "-0.02, overall equal or up, docs/quality.md")
        return OneHotTaskConfig(name="one_hot", classes=names, balance_classes=True,
                                class_fractions=fractions, dice_weight=1.0), notes
    width = fp.object_width
    if width is None:
        raise ValueError(f"plan: the training GT has no objects (non-zero labels) for a {kind} task")
    if kind in ("distance", "inner_distance"):
        scale = round_2(width / 4)
        clip = round_2(width / 2)
        tol = 2 * int(max(vs))
        cls = DistanceTaskConfig if kind == "distance" else InnerDistanceTaskConfig
        if kind == "distance":
            thresholds = [round(0.05 * i, 2) for i in range(-10, 11)]
            notes["thresholds"] = ("mask = distance > t for t in -0.5..0.5 by 0.05: the score "
                                   "changes fast near 0, so the sweep is fine there")
        else:
            thresholds = list(INNER_DISTANCE_THRESHOLDS)
            notes["thresholds"] = ("mask = inner distance > t, t > 0 only: the inner distance is 0 "
                                   "on the background, so t <= 0 would mark it as object")
        task = cls(name=kind, channels=_channels(kind, classes, channel), scale_factor=scale,
                   clip_distance=clip, tol_distance=tol, thresholds=thresholds)
        if kind == "inner_distance":  # instance ids: objects, not only a mask
            min_size = int(SPECK_FRACTION * (fp.object_volume or 0))
            task = attr.evolve(task, post_processor="instances", min_size=min_size)
            notes["post_processor"] = ("the GT holds instance ids: seeds at the inner-distance "
                                       "maxima, watershed in the mask, so touching objects "
                                       "come out separate (scored with F1 / AP as well)")
            notes["min_size"] = (f"{100 * SPECK_FRACTION:.0f} % of the typical object volume "
                                 f"({fp.object_volume or 0:.0f} voxels): smaller objects are "
                                 "specks")
        notes["scale_factor"] = (f"a quarter of the typical object width {width:.0f} (tanh saturates "
                                 "at ~2 scales, so the target varies over the whole radius)")
        notes["clip_distance"] = "half the typical object width"
        notes["tol_distance"] = "2 voxels"
        return task, notes
    # affinities
    hood = []
    dims = vs.dims
    for a in range(dims):
        o = [0] * dims
        o[a] = 1
        hood.append(tuple(o))
    for a in range(dims):
        steps = int(round(width / 3 / vs[a]))
        if steps >= 2:
            o = [0] * dims
            o[a] = min(steps, 8)
            hood.append(tuple(o))
    task = AffinitiesTaskConfig(
        name="affinities", neighborhood=[Coordinate(o) for o in hood], lsds=False,
        post_processor="agglomeration",
    )
    notes["neighborhood"] = (f"nearest neighbours + long-range offsets of ~1/3 the typical object "
                             f"width {width:.0f} per axis (at least 2, at most 8 voxels)")
    notes["lsds"] = ("no LSDs: on a CPU budget the steps their targets cost (~3 sigma of GT "
                     "context per crop) are worth more; 20-minute plans, best / last checkpoint "
                     "VOI: neurons 0.251 / 0.299 with LSDs, 0.244 / 0.250 without; confocal "
                     "cells 1.84 / 1.84 with, 1.77 / 1.77 without (docs/quality.md)")
    notes["post_processor"] = ("fragments + waterz agglomeration (the LSD paper's pipeline; better "
                               "than the mutex watershed on predicted boundaries, docs/quality.md)")
    return task, notes


def unread_fields(task: TaskConfig) -> list[str]:
    """``task_config.<field>`` of each field of ``task`` that its post-processor does not
    read (`UNREAD_BY_POST_PROCESSOR`): left out of the plan, they take their defaults."""
    if not isinstance(task, AffinitiesTaskConfig):
        return []
    unread = list(UNREAD_BY_POST_PROCESSOR[task.post_processor])
    if not task.lsds:
        unread += list(LSD_FIELDS)
    return [f"task_config.{f}" for f in unread]


def plan_augment(fp: Fingerprint, modality: str, two_d: bool = False):
    """Augmentations by modality; section defects only for a 3D network (a 2D one sees
    one section per crop: a zeroed section would be a blank crop with a full target)."""
    vs = fp.voxel_size
    stack = vs.dims == 3 and not two_d
    aniso = stack and anisotropic(vs)
    if modality == "em":
        cfg = AugmentConfig(
            mirror=True, transpose=True, intensity_scale=0.1, intensity_shift=0.1,
            rotate=True, blur=1.0, section_intensity=0.1 if stack else 0.0,
            missing_sections=0.02 if stack else 0.0,
            low_contrast_sections=0.02 if stack else 0.0,
            misalign_probability=0.2 if aniso else 0.0,
            misalign_max=float(4 * min(vs[1:])) if aniso else 0.0,
        )
        note = ("EM: flips, transposes, in-plane rotation, intensity, blur"
                + (", per-section intensity, missing / low-contrast sections" if stack else "")
                + (", misalignment (anisotropic stack)" if aniso else ""))
    else:
        cfg = AugmentConfig(
            mirror=True, transpose=True, intensity_scale=0.2, intensity_shift=0.1,
            gamma=0.3, noise=0.05, rotate=True, blur=1.0,
        )
        note = "light microscopy: flips, transposes, in-plane rotation, intensity, gamma, noise, blur"
    return cfg, note
