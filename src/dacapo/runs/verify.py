"""Everything a run needs before it starts, with one message per problem.

`run_problems` = the config's own problems (`RunConfig.problems`), then the model (its
input shapes fit the UNet, `dacapo.runs.input_shapes`; it builds, its output is not
empty), then the data (`split_problems`): every dataset opens and fits together
(`Dataset.check`), fits the task (`dataset_problems`, from the task's `GTRules`) and the
model (channels, a labelled region at least one model output large).
``dacapo verify`` prints them; ``dacapo train`` refuses to start while there are any;
``dacapo plan`` runs `split_problems` on the data it plans for, with the rules of the task
it plans, so the three commands accept and refuse the same data with the same messages.

`dataset_problems` (`dacapo.runs.dataset_checks`) states the rules for one dataset and a
task. `split_problems` adds: the training GT is not 0 everywhere (nothing to learn; a
training dataset of background alone is fine next to others). `run_problems` then checks
that the raw can be normalised as the run says (`normalization_problems`: the statistics
computed by the functions training and validation use, on the same arrays).

Partial annotations (`dacapo.experiments.datasplits`): a task without one channel per
class (affinities) cannot learn from them, said before opening (`Predictor.for_crop`; its
channels are no classes to check ``annotated`` against); opening a dataset with the task's
classes checks ``annotated`` and a class-array gt; `split_problems` adds that only training
datasets may be partial and that the task can learn from them (`Predictor.for_crop`);
how their GT is scanned: `dacapo.runs.dataset_checks`.
"""

from __future__ import annotations

from funlib.geometry import Coordinate

from dacapo.experiments.class_arrays import class_group
from dacapo.experiments.datasplits import (
    Dataset,
    DatasetConfig,
    DataSplitConfig,
    partial_validation_message,
)
from dacapo.experiments.normalization import for_array, with_statistics
from dacapo.experiments.run_config import RunConfig
from dacapo.experiments.tasks.task_config import GTRules, TaskConfig

from .dataset_checks import dataset_problems
from .input_shapes import input_shape_problems


def all_zero_message(names: list[str], one_hot: bool) -> str:
    """The training GT is 0 everywhere: nothing to learn."""
    which = (f"dataset {names[0]!r}" if len(names) == 1
             else f"datasets {', '.join(repr(n) for n in names)}")
    what = ("every voxel is class 0: nothing to tell the classes apart" if one_hot
            else "every voxel is 0: no objects to learn (0 is background)")
    return f"{which}: gt: {what}"


def open_split(split: DataSplitConfig, model=None, classes=None,
               task_config: TaskConfig | None = None
               ) -> tuple[list[tuple[bool, DatasetConfig, Dataset]], list[str]]:
    """Open every dataset of ``split`` (training ones first) and check that its arrays fit
    together (`Dataset.check`, the GT at ``model``'s output voxel size when given; partial
    annotations against the task's ``classes``, and first, with ``task_config``, that its
    task learns from them at all); ``(training?, config, dataset)`` per dataset that
    opened, and the problems."""
    opened, problems = [], []
    predictor = _predictor(task_config)
    for training, configs in ((True, split.train), (False, split.validate)):
        for dconf in configs:
            try:
                if predictor is not None and (dconf.partial or class_group(dconf.gt)):
                    _check_learns_partial(dconf.name, predictor)
                ds = dconf.open(classes)
                if model is not None:
                    ds.check(model.scale(ds.raw.voxel_size))
                opened.append((training, dconf, ds))
            except (ValueError, FileNotFoundError, TypeError) as e:
                problems.append(str(e))
    return opened, problems


def _predictor(task_config: TaskConfig | None):
    """The predictor of ``task_config`` (None without one, or when it does not build: an
    invalid task config is reported on its own)."""
    try:
        return None if task_config is None else task_config.build().predictor
    except Exception:  # noqa: BLE001 - see above
        return None


def _check_learns_partial(name: str, predictor) -> None:
    """ValueError naming the dataset when the task of ``predictor`` learns from complete
    annotations only (`Predictor.for_crop`'s message)."""
    try:
        predictor.for_crop(class_arrays=True)
    except ValueError as e:
        raise ValueError(f"dataset {name!r}: {str(e).splitlines()[0]}") from None


def split_problems(split: DataSplitConfig, task_config: TaskConfig, model=None,
                   architecture=None, scan: bool = True,
                   rules: GTRules | None = None) -> list[str]:
    """Every problem of the data of ``split`` for a task (and a model, when given): the
    one data check of ``dacapo verify``, ``train`` and ``plan`` (see the module docstring).

    ``rules``: the GT rules (default ``task_config.gt_rules()``; the planner gives those of
    the task it is planning). Stops after the first stage with problems: opening, then
    each dataset's own problems, then the training GT as a whole, then the model fit."""
    rules = task_config.gt_rules() if rules is None else rules
    opened, problems = open_split(split, model, list(rules.channel_names) or None, task_config)
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
                 strict_task: bool = True, normalization: bool = True) -> list[str]:
    """Reasons ``run_config`` cannot start (empty: fine); see the module docstring.
    ``normalization=False`` leaves out `normalization_problems` (for a caller that computes
    the statistics itself next, as training does: the raw read once)."""
    problems = run_config.problems(strict_task=strict_task)
    model = None
    if not any(p.startswith(("task_config", "architecture_config")) for p in problems):
        found = input_shape_problems(run_config.architecture_config)
        model, found = (None, found) if found else model_problems(run_config)
        problems += found
    if not check_data:
        return problems
    split = run_config.datasplit_config
    if model is None or problems:  # the data are only opened
        return problems + open_split(split, model, task_classes(run_config.task_config),
                                     run_config.task_config)[1]
    problems = split_problems(split, run_config.task_config, model,
                              run_config.architecture_config, scan=scan)
    if problems or not scan or not normalization:
        return problems
    return normalization_problems(run_config)


def normalization_problems(run_config: RunConfig) -> list[str]:
    """The raw cannot be normalised as ``run_config`` says (its values read): statistics
    left empty are computed from a constant training raw (`with_statistics`, as training
    starts), or an array is constant with each array's own statistics (`for_array`, as
    training and validation read each raw). One message naming the data per problem."""
    config = run_config.normalization
    if config is None or config.complete and not config.per_array:
        return []
    if not config.per_array:
        try:
            with_statistics(run_config)
        except ValueError as e:
            return [str(e)]
        return []
    opened, problems = open_split(run_config.datasplit_config, None,
                                  task_classes(run_config.task_config))
    done = set()
    for _training, dconf, ds in opened:
        if dconf.raw not in done:
            done.add(dconf.raw)
            try:
                for_array(config, ds.raw, f"dataset {ds.name!r}: raw")
            except ValueError as e:
                problems.append(str(e))
    return problems
