"""Everything a run needs before it starts, with one message per problem.

`run_problems` = the config's own problems (`RunConfig.problems`), then the model (it
builds, its output is not empty), then the data (`split_problems`): every dataset opens and
fits together (`Dataset.check`), fits the task (`dataset_problems`, from the task's
`GTRules`) and the model (channels, a labelled region at least one model output large).
``dacapo verify`` prints them; ``dacapo train`` refuses to start while there are any;
``dacapo plan`` runs `split_problems` on the data it plans for, with the rules of the task
it plans, so the three commands accept and refuse the same data with the same messages.

Rules of `dataset_problems` (a task states its own in ``gt_rules()``, so a new task kind
cannot skip them): GT not float for instance-label tasks (ids stored as floats lose
precision above 2**24 and are usually a probability map by mistake); GT values finite and
non-negative for every task that scans its GT (0 is background); one-hot class ids in
``[0, number of classes)``; with C > 1 distance channels and a single GT array, class ids
in ``[0, C]``; a mask non-zero somewhere; float raw finite everywhere (a NaN spreads
through every convolution). `split_problems` adds: the training GT is not 0 everywhere
(nothing to learn; a training dataset of background alone is fine next to others).
Values are read chunk by chunk (`dacapo.io.array_checks`).

Partial annotations (`dacapo.experiments.datasplits`): opening a dataset with the task's
classes checks ``annotated`` and a class-array gt; `split_problems` adds that only training
datasets may be partial and that the task can learn from them (`Predictor.for_crop`). A
class-array gt is scanned array by array (finite, non-negative: nonzero = in the class); a
gt's ``unknown_label`` voxels are read as 0 by the value rules (255 is no class id).
"""

from __future__ import annotations

from collections.abc import Iterator

import attr
import numpy as np
from funlib.geometry import Coordinate

from dacapo.errors import InputError
from dacapo.experiments.datasplits import (
    Dataset,
    DatasetConfig,
    DataSplitConfig,
    partial_validation_message,
)
from dacapo.experiments.run_config import RunConfig
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
    """The source of an array (for `scan_array`), with ``value`` read as 0."""

    def __init__(self, array, value: int) -> None:
        self.source = getattr(array, "_source_data", array)
        self.value = value
        self.shape = tuple(self.source.shape)
        self.dtype = self.source.dtype
        self.chunks = getattr(self.source, "chunks", None)

    def __getitem__(self, index) -> np.ndarray:
        block = np.asarray(self.source[index])
        return np.where(block == self.value, np.zeros((), block.dtype), block)


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


def all_zero_message(names: list[str], one_hot: bool) -> str:
    """The training GT is 0 everywhere: nothing to learn."""
    which = (f"dataset {names[0]!r}" if len(names) == 1
             else f"datasets {', '.join(repr(n) for n in names)}")
    what = ("every voxel is class 0: nothing to tell the classes apart" if one_hot
            else "every voxel is 0: no objects to learn (0 is background)")
    return f"{which}: gt: {what}"


def open_split(split: DataSplitConfig, model=None, classes=None
               ) -> tuple[list[tuple[bool, DatasetConfig, Dataset]], list[str]]:
    """Open every dataset of ``split`` (training ones first) and check that its arrays fit
    together (`Dataset.check`, the GT at ``model``'s output voxel size when given; partial
    annotations against the task's ``classes``); ``(training?, config, dataset)`` per
    dataset that opened, and the problems."""
    opened, problems = [], []
    for training, configs in ((True, split.train), (False, split.validate)):
        for dconf in configs:
            try:
                ds = dconf.open(classes)
                if model is not None:
                    ds.check(model.scale(ds.raw.voxel_size))
                opened.append((training, dconf, ds))
            except (ValueError, FileNotFoundError, TypeError) as e:
                problems.append(str(e))
    return opened, problems


def split_problems(split: DataSplitConfig, task_config: TaskConfig, model=None,
                   architecture=None, scan: bool = True,
                   rules: GTRules | None = None) -> list[str]:
    """Every problem of the data of ``split`` for a task (and a model, when given): the
    one data check of ``dacapo verify``, ``train`` and ``plan`` (see the module docstring).

    ``rules``: the GT rules (default ``task_config.gt_rules()``; the planner gives those of
    the task it is planning). Stops after the first stage with problems: opening, then
    each dataset's own problems, then the training GT as a whole, then the model fit."""
    rules = task_config.gt_rules() if rules is None else rules
    opened, problems = open_split(split, model, list(rules.channel_names) or None)
    if problems:
        return problems
    problems = _partial_problems(opened, task_config)
    if problems:
        return problems
    nonzero: dict[tuple, int | None] = {}  # non-zero GT voxels per (raw, gt, mask)
    training_nonzero: dict[str, int | None] = {}
    for training, dconf, ds in opened:
        key = (dconf.raw, dconf.gt, dconf.mask)
        if key not in nonzero:
            found, nonzero[key] = dataset_problems(task_config, ds, architecture, scan=scan,
                                                   rules=rules)
            problems += found
        if training:
            training_nonzero[dconf.name] = nonzero[key]
    if problems:
        return problems
    counts = list(training_nonzero.values())
    if counts and all(c == 0 for c in counts):
        problems.append(all_zero_message(list(training_nonzero), rules.num_classes is not None))
    if model is None or problems:
        return problems
    for training, dconf, ds in opened:
        problems += _fits_model(dconf.name, ds, model, training)
    return problems


def _partial_problems(opened, task_config: TaskConfig) -> list[str]:
    """Partially annotated datasets: training ones only, and the task learns from them."""
    problems, predictor = [], None
    for training, _dconf, ds in opened:
        if not ds.partial:
            continue
        if not training:
            problems.append(partial_validation_message(ds.name))
            continue
        try:
            predictor = predictor or task_config.build().predictor
            ds.crop_predictor(predictor)
        except ValueError as e:
            problems.append(str(e).splitlines()[0])
    return problems


def task_classes(task_config: TaskConfig) -> list[str] | None:
    """The task's class (channel) names, None when its config cannot say."""
    try:
        return list(task_config.gt_rules().channel_names) or None
    except Exception:  # noqa: BLE001 - an invalid task config is reported on its own
        return None


def model_problems(run_config: RunConfig):
    """(model or None, problems): the run's model builds and its output is not empty."""
    try:
        model = run_config.task_config.build().create_model(run_config.architecture_config)
        _, out_shape = model.compute_output_shape(Coordinate(model.input_shape))
        if any(s < 1 for s in out_shape):
            raise ValueError(f"input_shape {tuple(model.input_shape)} gives an empty output "
                             f"{tuple(out_shape)}")
    except Exception as e:  # noqa: BLE001 - any failure to build is a config problem
        return None, [f"model: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"]
    return model, []


def _fits_model(name: str, ds, model, training: bool) -> list[str]:
    problems = []
    if ds.num_raw_channels != model.num_in_channels:
        problems.append(f"dataset {name!r}: raw has {ds.num_raw_channels} channel(s), the "
                        f"model expects {model.num_in_channels}")
    if training:
        _, out_shape = model.compute_output_shape(model.input_shape)
        out_size = Coordinate(out_shape) * model.scale(ds.raw.voxel_size)
        roi = ds.training_roi
        if any(s < o for s, o in zip(roi.shape, out_size)):
            problems.append(f"dataset {name!r}: labelled region {tuple(roi.shape)} (world "
                            f"units) is smaller than the model output {tuple(out_size)}")
    return problems


def run_problems(run_config: RunConfig, check_data: bool = True, scan: bool = True,
                 strict_task: bool = True) -> list[str]:
    """Reasons ``run_config`` cannot start (empty: fine); see the module docstring."""
    problems = run_config.problems(strict_task=strict_task)
    model = None
    if not any(p.startswith(("task_config", "architecture_config")) for p in problems):
        model, found = model_problems(run_config)
        problems += found
    if not check_data:
        return problems
    split = run_config.datasplit_config
    if model is None or problems:  # the data are only opened
        return problems + open_split(split, model, task_classes(run_config.task_config))[1]
    return split_problems(split, run_config.task_config, model,
                          run_config.architecture_config, scan=scan)
