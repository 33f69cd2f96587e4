"""Per-class post-processing fields shared by the one-hot, distance and hot-distance tasks.

``instance_classes`` (None by default: today's argmax / threshold post-processing and
evaluation) turns it on: every class of the task is then segmented on its own
(`PerClassPostProcessor`) and scored the CellMap way (`CellMapEvaluator`). A class named in
``instance_classes`` is an *instance* class, every other class a *semantic* one; an empty
list makes every class semantic (CellMap scores, per-class outputs).

- semantic: one-hot: the argmax, then (with ``class_fractions`` and ``balance_classes``) the
  prior-corrected argmax for each τ of ``prior_corrections``, then ``probability > t`` for
  each of ``class_thresholds``; distance: ``prediction > t`` for each of ``thresholds``;
- instance: one-hot: connected components of each of those masks, objects under ``m``
  voxels removed, for each ``m`` of ``instance_min_sizes``; distance: the same on ``prediction >
  t`` for every pair (t, m), or, with ``post_processor: instances``, the distance-seeded
  watershed for every (t, seed threshold) pair of the instances sweep and every m.

The classes' sweeps are zipped (see `PerClassPostProcessor`): the number of parameter
sets is that of the longest class sweep, and each class's best setting is chosen from its
own ``<class>__score``.
"""

from __future__ import annotations

import attr

from .distance_post_processing import instance_context
from .evaluators import CellMapEvaluator
from .post_processors import ClassSetting, PerClassPostProcessor

#: default sweep of the smallest object (voxels) of an instance class
INSTANCE_MIN_SIZES = (0, 64, 256, 1024, 4096)
#: default sweep of a one-hot class's probability threshold (besides the argmax)
ONE_HOT_CLASS_THRESHOLDS = (0.3, 0.5, 0.6, 0.7, 0.8, 0.9)
#: default sweep of the prior correction τ of a one-hot class's argmax (with class_fractions)
ONE_HOT_PRIOR_CORRECTIONS = (0.5, 1.0, 1.5)


def instance_classes_field():
    return attr.ib(
        default=None,
        metadata={"help_text": "Per-class post-processing and CellMap scores: the classes "
                  "segmented into objects (connected components, or the distance-seeded "
                  "watershed with post_processor: instances); every other class is semantic "
                  "(argmax / threshold), e.g. [mitochondrion]. Scored the CellMap way per "
                  "class (<class>__f1, __combined_score, __iou, ...) and overall "
                  "(overall_score); each class's setting is swept and chosen on its own "
                  "by <class>__score, and apply takes the checkpoint where the chosen "
                  "settings together score the best overall_score, writing one label "
                  "image per class (<output>/<class>). None (default): one segmentation for "
                  "all classes, as before; [] = every class semantic."},
    )


def instance_min_sizes_field():
    return attr.ib(
        factory=lambda: list(INSTANCE_MIN_SIZES),
        metadata={"help_text": "With instance_classes: sweep of the smallest object (voxels) "
                  "kept in an instance class; smaller ones (specks) are removed."},
    )


def check_per_class(config, classes_field: str) -> list[str]:
    """Problems with ``instance_classes`` / ``instance_min_sizes`` (one line each, naming
    the field and the class)."""
    chosen = config.instance_classes
    if chosen is None:
        return []
    classes = list(getattr(config, classes_field) or [])
    if not isinstance(chosen, list | tuple) or not all(isinstance(c, str) for c in chosen):
        return [f"instance_classes: must be a list of class names, got {chosen!r}"]
    problems = [f"instance_classes: class {c!r} is not one of {classes_field} {classes}"
                for c in chosen if c not in classes]
    if len(set(chosen)) != len(chosen):
        problems.append(f"instance_classes: duplicate names in {list(chosen)}")
    problems += [f"{classes_field}: class name {c!r} is reserved with instance_classes"
                 for c in classes if c in ("type", "id")]
    sizes = config.instance_min_sizes
    if not isinstance(sizes, list | tuple) or not sizes or not all(
            isinstance(m, int) and not isinstance(m, bool) and m >= 0 for m in sizes):
        problems.append(f"instance_min_sizes: must be a non-empty list of integers >= 0, got "
                        f"{sizes!r}")
    elif len(set(sizes)) != len(sizes):
        problems.append(f"instance_min_sizes: duplicate values in {list(sizes)}")
    return problems


def one_hot_per_class(config):
    """(post-processor, evaluator) of a one-hot config with ``instance_classes``."""
    priors = (config.prior_corrections
              if config.class_fractions is not None and config.balance_classes else [])
    # the argmax, the prior-corrected argmaxes, then probability > t: (threshold, prior)
    masks = [(None, 0.0), *((None, p) for p in priors), *((t, 0.0) for t in config.class_thresholds)]
    sweeps = {c: ([ClassSetting("components", t, None, m, p) for t, p in masks
                   for m in config.instance_min_sizes]
                  if c in config.instance_classes
                  else [ClassSetting("semantic", t, prior=p) for t, p in masks])
              for c in config.classes}
    post = PerClassPostProcessor(config.classes, sweeps, class_fractions=config.class_fractions,
                                 clip=(config.clipmin, config.clipmax))
    return (post,
            CellMapEvaluator(config.classes, config.instance_classes, class_id_offset=0))


def distance_per_class(config, channel_offset: int = 0):
    """(post-processor, evaluator) of a distance / hot-distance config with
    ``instance_classes`` (class k is prediction channel ``channel_offset + k``)."""
    sizes = list(config.instance_min_sizes)
    if config.post_processor == "instances":
        pairs = [(t, s) for s in config.seed_thresholds for t in config.thresholds if s > t]
        instance = [ClassSetting("watershed", t, s, m) for t, s in pairs for m in sizes]
    else:
        instance = [ClassSetting("components", t, None, m) for t in config.thresholds
                    for m in sizes]
    semantic = [ClassSetting("semantic", t) for t in config.thresholds]
    sweeps = {c: instance if c in config.instance_classes else semantic for c in config.channels}
    post = PerClassPostProcessor(config.channels, sweeps, channel_offset=channel_offset,
                                 h=config.seed_h, min_seed_distance=config.min_seed_distance,
                                 context=instance_context(config))
    return post, CellMapEvaluator(config.channels, config.instance_classes, class_id_offset=1)
