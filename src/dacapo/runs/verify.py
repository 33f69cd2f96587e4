"""Everything a run needs before it starts, with one message per problem.

`run_problems` = the config's own problems (`RunConfig.problems`), then the model (it
builds, its output is not empty), then the data: every dataset opens and fits together
(`Dataset.check`), fits the task (`data_problems`, from the task's `GTRules`) and the
model (channels, a labelled region at least one model output large). ``dacapo verify``
prints them; ``dacapo train`` refuses to start while there are any.

Rules of `data_problems` (a task states its own in ``gt_rules()``, so a new task kind
cannot skip them): GT not float for instance-label tasks (ids stored as floats lose
precision above 2**24 and are usually a probability map by mistake); GT values finite and
non-negative for every task that scans its GT (0 is background); one-hot class ids in
``[0, number of classes)``; with C > 1 distance channels and a single GT array, class ids
in ``[0, C]``; a mask non-zero somewhere; float raw finite everywhere (a NaN spreads
through every convolution). Values are read chunk by chunk (`dacapo.io.array_checks`).
"""

from __future__ import annotations

from funlib.geometry import Coordinate

from dacapo.errors import InputError
from dacapo.experiments.run_config import RunConfig
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


def data_problems(task_config, dataset, architecture=None, scan: bool = True,
                  budget_bytes: int = DEFAULT_BUDGET) -> list[str]:
    """Every problem of an opened dataset (``.name``, ``.raw``, ``.gt``, ``.mask``) for a task.

    Metadata first (dims, channels, dtype, mask geometry, empty arrays); with ``scan``
    the arrays' values are read once each. Returns one message per problem.
    """
    prefix = f"dataset {dataset.name!r}"
    raw, gt, mask = dataset.raw, dataset.gt, dataset.mask
    rules = task_config.gt_rules()
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
    ok &= _collect(problems, check_channels, gt.shape, dims, rules.num_channels,
                   f"{prefix}: gt", rules.channel_names if rules.num_channels > 1 else None)
    if mask is not None:
        ok &= _collect(problems, check_mask, mask, gt, f"{prefix}: mask", "gt")
    if not ok or not scan:
        return problems

    _collect(problems, check_finite_array, raw, f"{prefix}: raw", budget_bytes)
    if rules.scan:
        problems += _gt_value_problems(scan_array(gt, budget_bytes), rules, gt.shape, dims,
                                       f"{prefix}: gt")
    if mask is not None and scan_array(mask, budget_bytes).nonzero == 0:
        problems.append(f"{prefix}: mask: no non-zero voxel (nothing is labelled)")
    return problems


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
    opened = []
    for training, configs in ((True, split.train), (False, split.validate)):
        for dconf in configs:
            try:
                ds = dconf.open()
                if model is not None:
                    ds.check(model.scale(ds.raw.voxel_size))
                opened.append((training, dconf, ds))
            except (ValueError, FileNotFoundError, TypeError) as e:
                problems.append(str(e))
    if model is None or problems:
        return problems
    seen: set[tuple] = set()
    for _, dconf, ds in opened:
        key = (dconf.raw, dconf.gt, dconf.mask)
        if key not in seen:
            seen.add(key)
            problems += data_problems(run_config.task_config, ds,
                                      run_config.architecture_config, scan=scan)
    if problems:
        return problems
    for training, dconf, ds in opened:
        problems += _fits_model(dconf.name, ds, model, training)
    return problems
