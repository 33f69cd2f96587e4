"""The problems of one opened dataset for a task (`dataset_problems`), one message each;
`dacapo.runs.verify` runs it on every dataset of a split.

Rules (a task states its own in ``gt_rules()``, so a new task kind cannot skip them):
GT not float for instance-label tasks (ids stored as floats lose
precision above 2**24 and are usually a probability map by mistake); GT values finite and
non-negative for every task that scans its GT (0 is background); one-hot class ids in
``[0, number of classes)``; with C > 1 distance channels and a single GT array, class ids
in ``[0, C]``; a mask non-zero somewhere; float raw finite everywhere (a NaN spreads
through every convolution). Values are read chunk by chunk (`dacapo.io.array_checks`).

Partial annotations: a class-array gt is scanned array by array (finite, non-negative:
nonzero = in the class); a gt's ``unknown_label`` voxels are read as 0 by the value rules
(255 is no class id), and a warning says when there is none (a complete crop, or a wrong
value).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import attr
import numpy as np

from dacapo.errors import InputError
from dacapo.experiments.datasplits import Dataset
from dacapo.experiments.tasks.task_config import GTRules, TaskConfig
from dacapo.io.array_checks import (
    DEFAULT_BUDGET,
    check_channels,
    check_dims,
    check_finite_array,
    check_integer_dtype,
    check_mask,
    check_neighborhood_dims,
    check_not_empty,
    label_text,
    negative_message,
    non_finite_message,
    scan_array,
    spatial_and_channels,
    too_large_message,
)

logger = logging.getLogger(__name__)


def _collect(problems: list[str], func, *args, **kwargs) -> bool:
    try:
        func(*args, **kwargs)
        return True
    except InputError as e:
        problems.append(str(e))
        return False


def dataset_problems(task_config: TaskConfig, dataset: Dataset, architecture=None,
                     scan: bool = True, budget_bytes: int = DEFAULT_BUDGET,
                     rules: GTRules | None = None) -> tuple[list[str], int | None]:
    """Every problem of an opened dataset (``.name``, ``.raw``, ``.gt``, ``.mask``) for a
    task, and the number of non-zero GT voxels (None when the GT was not read).

    Metadata first (dims, channels, dtype, mask geometry, empty arrays); with ``scan``
    the arrays' values are read once each. ``rules``: the GT rules (default the task's).
    Returns one message per problem.
    """
    prefix = f"dataset {dataset.name!r}"
    raw, gt, mask = dataset.raw, dataset.gt, dataset.mask
    rules = task_config.gt_rules() if rules is None else rules
    problems: list[str] = []
    dims = gt.voxel_size.dims
    ok = _collect(problems, check_not_empty, raw.shape, f"{prefix}: raw")
    ok &= _collect(problems, check_not_empty, gt.shape, f"{prefix}: gt")
    if architecture is not None:
        ok &= _collect(problems, check_dims, raw.voxel_size.dims, len(architecture.input_shape),
                       f"{prefix}: raw", f"the architecture {architecture.name!r} is "
                       f"{len(architecture.input_shape)}D")
    if rules.neighborhood is not None:
        ok &= _collect(problems, check_neighborhood_dims, rules.neighborhood, dims,
                       f"{prefix}: task {task_config.name!r}")
    if rules.integer_labels:
        ok &= _collect(problems, check_integer_dtype, gt.dtype, f"{prefix}: gt",
                       f"instance labels for a {type(task_config).__name__}")
    if dataset.class_arrays is None:  # a class-array stack has the task's channels
        ok &= _collect(problems, check_channels, gt.shape, dims, rules.num_channels,
                       f"{prefix}: gt", rules.channel_names if rules.num_channels > 1 else None)
    if mask is not None:
        ok &= _collect(problems, check_mask, mask, gt, f"{prefix}: mask", "gt")
    if not ok or not scan:
        return problems, None

    _collect(problems, check_finite_array, raw, f"{prefix}: raw", budget_bytes)
    nonzero = None
    if rules.scan:
        nonzero = 0
        for name, array, part_rules in _gt_parts(dataset, rules, prefix):
            summary = scan_array(array, budget_bytes)
            if isinstance(array, _ReadAsZero) and not array.found:
                logger.warning("%s: unknown_label: no gt voxel has the value %d (every voxel "
                               "labelled: fine for a complete crop; otherwise check the value)",
                               prefix, array.value)
            nonzero += summary.nonzero
            problems += _gt_value_problems(summary, part_rules, array.shape, dims, name)
        if dataset.class_arrays is not None and rules.num_classes is not None:
            nonzero = None  # no class 0 in a one-hot class-array gt: not "all zero"
    if mask is not None and scan_array(mask, budget_bytes).nonzero == 0:
        problems.append(f"{prefix}: mask: no non-zero voxel (nothing is labelled)")
    return problems, nonzero


def _gt_parts(dataset: Dataset, rules: GTRules, prefix: str) -> Iterator[tuple[str, object, GTRules]]:
    """(name, array, rules) of each GT array to scan: the gt (its ``unknown_label`` read as
    0), or each array of a class-array gt (a binary mask: no class-id rules)."""
    if dataset.class_arrays is None:
        gt = dataset.gt
        if dataset.unknown_label is not None:
            gt = _ReadAsZero(gt, dataset.unknown_label)
        yield f"{prefix}: gt", gt, rules
        return
    mask_rules = attr.evolve(rules, num_classes=None, num_channels=1)
    for name, array in dataset.class_arrays.items():
        yield f"{prefix}: gt/{name}", array, mask_rules


class _ReadAsZero:
    """The source of an array (for `scan_array`), with ``value`` read as 0; ``found``:
    the voxels of that value read so far."""

    def __init__(self, array, value: int) -> None:
        self.source = getattr(array, "_source_data", array)
        self.value = value
        self.found = 0
        self.shape = tuple(self.source.shape)
        self.dtype = self.source.dtype
        self.chunks = getattr(self.source, "chunks", None)

    def __getitem__(self, index) -> np.ndarray:
        block = np.asarray(self.source[index])
        hit = block == self.value
        self.found += int(np.count_nonzero(hit))
        return np.where(hit, np.zeros((), block.dtype), block)


def _gt_value_problems(s, rules, shape, dims: int, name: str) -> list[str]:
    if s.nan or s.inf:
        return [non_finite_message(name, s.nan, s.inf, s.first_non_finite)]
    if s.min < 0:
        return [negative_message(name, s.min, s.first_negative)]
    if rules.num_classes is not None and s.max >= rules.num_classes:
        return [too_large_message(name, s.max, rules.num_classes,
                                  f" for classes {list(rules.channel_names)}")]
    if rules.num_classes is not None and s.non_integral:
        return [f"{name}: {s.non_integral} non-integral class id(s)"]
    c = rules.num_channels
    if c > 1 and spatial_and_channels(shape, dims)[1] in (None, 1) and s.max > c:
        return [f"{name}: class id {label_text(s.max)} > number of channels {c} "
                f"{list(rules.channel_names)} (a single GT array holds ids 0..{c}, "
                "channel i is gt == i + 1)"]
    return []
