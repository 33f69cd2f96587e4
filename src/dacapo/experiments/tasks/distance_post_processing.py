"""Post-processing choices shared by the distance tasks (Distance, InnerDistance, HotDistance).

``post_processor: "threshold"`` (default, today's behaviour): per channel ``prediction >
t`` over the config's ``thresholds``, scored by the binary evaluator.
``post_processor: "instances"``: seeded watershed of the distance (seeds at its maxima
above each of ``seed_thresholds``, flooding ``prediction > t`` for each of ``thresholds``
below the seed threshold; `DistanceInstancesPostProcessor`), scored by the binary +
instance evaluator (binary metrics of the mask per channel, VOI / ARAND / IoU matching of
the instances; `BinaryInstanceEvaluationScores`). The GT must then hold instance ids.

The attrs field factories below give the three configs the same fields and help texts.
"""

from __future__ import annotations

from collections.abc import Sequence

import attr

from .evaluators import BinaryInstanceEvaluator, BinarySegmentationEvaluator
from .post_processors import DistanceInstancesPostProcessor, ThresholdPostProcessor
from .task_config import check_number_list

POST_PROCESSORS = ("threshold", "instances")

#: Seed thresholds of the instances sweep (tanh distances; objects' interiors exceed them).
#: On lm_nuclei (inner distance, scale_factor ~ radius / 3, blurred + noisy) 0.5-0.7 did
#: best; 0.3-0.4 merged more, 0.9 scored lower (benchmarks/bench_distance_instances.py).
SEED_THRESHOLDS = (0.5, 0.6, 0.7)

#: Default h of the h-maxima seeds (None: every component above the seed threshold seeds).
SEED_H = None

#: Default blockwise context, in units of ``scale_factor`` (see `instance_context`).
CONTEXT_SCALE_FACTORS = 4.0


def thresholds_field(default: Sequence[float], what: str):
    return attr.ib(
        factory=lambda: list(default),
        metadata={"help_text": f"Threshold sweep on the tanh distances ({what}): the "
                  "foreground is prediction > t. Also the mask thresholds of the "
                  "'instances' post-processor."},
    )


def post_processor_field():
    return attr.ib(
        default="threshold",
        metadata={"help_text": "'threshold': binary masks per channel, binary evaluation "
                  "(default). 'instances': seeds at the distance maxima, watershed within "
                  "the thresholded mask, so touching objects come out separate; scored by "
                  "the binary and the instance evaluator (the GT must hold instance ids)."},
    )


def seed_thresholds_field():
    return attr.ib(
        factory=lambda: list(SEED_THRESHOLDS),
        metadata={"help_text": "'instances' only: seed threshold sweep; seeds lie where the "
                  "prediction exceeds it (each paired with every mask threshold below it)."},
    )


def seed_h_field():
    return attr.ib(
        default=SEED_H,
        metadata={"help_text": "'instances' only: None = every connected component above the "
                  "seed threshold is a seed; a number h >= 0 = only the h-maxima there (peaks "
                  "that do not reach a higher peak without descending more than h)."},
    )


def min_seed_distance_field():
    return attr.ib(
        default=0.0,
        metadata={"help_text": "'instances' only: seeds closer than this (world units) are "
                  "joined into one object (0 = off)."},
    )


def min_size_field():
    return attr.ib(
        default=0,
        metadata={"help_text": "'instances' only: objects with fewer voxels are removed."},
    )


def instance_context_field():
    return attr.ib(
        default=None,
        metadata={"help_text": "'instances' only: context (world units) each block sees in "
                  "blockwise post-processing; at least the largest object's diameter. None: "
                  f"max({CONTEXT_SCALE_FACTORS:g} x scale_factor, 2 x min_seed_distance)."},
    )


def check_post_processing(config) -> list[str]:
    """Problems with the post-processing fields of a distance task config."""
    problems = check_number_list("thresholds", config.thresholds, -1.0, 1.0)
    if config.post_processor not in POST_PROCESSORS:
        return problems + [f"post_processor: must be one of {list(POST_PROCESSORS)}, got "
                           f"{config.post_processor!r}"]
    if config.post_processor != "instances":
        return problems
    problems += check_number_list("seed_thresholds", config.seed_thresholds, -1.0, 1.0)
    if config.seed_h is not None and not (isinstance(config.seed_h, int | float)
                                          and config.seed_h >= 0):
        problems.append(f"seed_h: must be None or >= 0, got {config.seed_h!r}")
    if not (isinstance(config.min_seed_distance, int | float) and config.min_seed_distance >= 0):
        problems.append(f"min_seed_distance: must be >= 0, got {config.min_seed_distance!r}")
    if not (isinstance(config.min_size, int) and config.min_size >= 0):
        problems.append(f"min_size: must be an integer >= 0, got {config.min_size!r}")
    if config.instance_context is not None and not (
            isinstance(config.instance_context, int | float) and config.instance_context >= 0):
        problems.append(f"instance_context: must be None or >= 0, got {config.instance_context!r}")
    if not problems and not any(s > t for s in config.seed_thresholds for t in config.thresholds):
        problems.append(f"seed_thresholds: none of {list(config.seed_thresholds)} is above a "
                        f"threshold of {list(config.thresholds)}")
    return problems


def instance_context(config) -> float:
    """Blockwise context (world units) of the instances post-processor."""
    if config.instance_context is not None:
        return float(config.instance_context)
    return max(CONTEXT_SCALE_FACTORS * float(config.scale_factor),
               2.0 * float(config.min_seed_distance))


def build_post_processing(config, channel_offset: int = 0, num_channels: int | None = None):
    """(post-processor, evaluator) of a distance task config."""
    channels = list(config.channels)
    if config.post_processor == "instances":
        post = DistanceInstancesPostProcessor(
            thresholds=config.thresholds, seed_thresholds=config.seed_thresholds,
            h=config.seed_h, min_seed_distance=config.min_seed_distance,
            min_size=config.min_size, channel_offset=channel_offset,
            num_channels=num_channels, context=instance_context(config),
        )
        evaluator = BinaryInstanceEvaluator(config.clip_distance, config.tol_distance, channels)
    else:
        post = ThresholdPostProcessor(thresholds=config.thresholds,
                                      channel_offset=channel_offset, num_channels=num_channels)
        evaluator = BinarySegmentationEvaluator(config.clip_distance, config.tol_distance,
                                                channels)
    return post, evaluator
