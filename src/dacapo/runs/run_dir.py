"""The run directory: everything one training run writes, in one folder.

Layout of ``<root>/<run name>/``::

    run.yaml               the whole RunConfig (round-trips with `dacapo.io.config_yaml`)
    checkpoints/<it>.pt    {"iteration", "model", "optimizer"} every checkpoint_interval
                           (written to a temp file, then os.replace: never half-written;
                           a corrupt one, e.g. from a failed copy, is reported by name)
    training_stats.csv     iteration,loss,time
    validation_scores.csv  iteration,dataset,parameters,criterion,value
    best.json              {criterion: {iteration, parameters, value, datasets, ...}}:
                           the best by the mean over the validation datasets
    snapshots/<it>.zarr    raw, gt, target, weight, prediction of one training batch
    predictions/<it>/      validation predictions and segmentations (zarr)
    plots/                 PNG figures (see `dacapo.runs.plots`)
    logs/                  daisy worker logs and done-markers of blockwise jobs
    tensorboard/           TensorBoard event files (see `dacapo.runs.tensorboard_log`)
    mlflow.json            the MLflow run a tracked training continues (`dacapo.runs.mlflow_log`)

Checkpoints: `dacapo.runs.checkpoint_files`; the CSV tables and ``best.json``:
`dacapo.runs.run_tables` (appended line by line, so a killed run loses at most the line
being written; `RunDir.truncate_training_stats` drops rows newer than the checkpoint a
run resumes from).
"""

from __future__ import annotations

import os
import reprlib
from pathlib import Path
from typing import Any

from dacapo.experiments.run_config import RunConfig
from dacapo.io.arrays import atomic_write_text
from dacapo.io.config_yaml import from_yaml, to_dict, to_yaml
from dacapo.runs.checkpoint_files import CheckpointFiles
from dacapo.runs.run_tables import RunTables


class RunDir(CheckpointFiles, RunTables):
    """Paths and files of one run directory (created on demand); checkpoints
    (`CheckpointFiles`) and tables (`RunTables`) from the mixins."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # ---- paths -------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / "run.yaml"

    @property
    def snapshots(self) -> Path:
        return self.path / "snapshots"

    @property
    def predictions(self) -> Path:
        return self.path / "predictions"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    def create(self) -> RunDir:
        """Make the folders; remove temp files a killed writer left behind."""
        for d in (self.path, self.checkpoints, self.plots, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        for d in (self.path, self.checkpoints):
            for stale in d.glob(".*.tmp"):
                stale.unlink(missing_ok=True)
        return self

    def exists(self) -> bool:
        return self.config_file.is_file()

    # ---- config ------------------------------------------------------------
    def save_config(self, run_config) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_file, to_yaml(run_config))

    def load_config(self) -> RunConfig:
        if not self.config_file.is_file():
            raise FileNotFoundError(f"run directory {str(self.path)!r}: no run.yaml in it")
        return from_yaml(self.config_file, RunConfig)


#: settings a re-run may change: the schedule and how the work is spread over the machine
FREE_FIELDS = {"num_iterations", "validation_interval", "checkpoint_interval",
               "snapshot_interval", "num_workers", "device", "padding", "test_time_flips"}
FREE_TRAINER_FIELDS = {"num_data_workers", "torch_threads"}


def _comparable(config: dict) -> dict:
    """The fields of a run config (`to_dict`) that identify the run, with the array and
    weight paths normalised (``os.path.realpath``: ``/a/b/../x.zarr`` is ``/a/x.zarr``,
    relative ones are taken from the current directory, as they are opened)."""
    out = {k: v for k, v in config.items() if k not in FREE_FIELDS}
    if isinstance(out.get("trainer_config"), dict):
        out["trainer_config"] = {k: v for k, v in out["trainer_config"].items()
                                 if k not in FREE_TRAINER_FIELDS}
    split = out.get("datasplit_config")
    if isinstance(split, dict):
        out["datasplit_config"] = {
            part: [_normalised(d, ("raw", "gt", "mask")) for d in datasets]
            if isinstance(datasets, list) else datasets
            for part, datasets in split.items()
        }
    if isinstance(out.get("task_config"), dict):
        out["task_config"] = _normalised(out["task_config"], ("weights",))
    return out


def _normalised(d: Any, keys: tuple[str, ...]) -> Any:
    if not isinstance(d, dict):
        return d
    return {k: os.path.realpath(v) if k in keys and isinstance(v, str) and v else v
            for k, v in d.items()}


def first_difference(stored: Any, new: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """``(field path, stored value, new value)`` of the first leaf where two config dicts
    differ (``datasplit_config.train[0].raw``), None when they are equal."""
    if isinstance(stored, dict) and isinstance(new, dict):
        for key in [*new, *(k for k in stored if k not in new)]:
            found = first_difference(stored.get(key), new.get(key),
                                     f"{path}.{key}" if path else str(key))
            if found:
                return found
        return None
    if isinstance(stored, list) and isinstance(new, list) and len(stored) == len(new):
        for i, (a, b) in enumerate(zip(stored, new)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if stored == new else (path, stored, new)


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 200


def prepare_run_dir(run_config: RunConfig, root: str | Path) -> RunDir:
    """Create ``<root>/<name>`` with ``run.yaml``, or check that it holds the same run.

    A stored run with another config raises ValueError naming the first differing field
    and both values (``FREE_FIELDS`` and ``FREE_TRAINER_FIELDS`` may change; paths are
    compared normalised, see `_comparable`).
    """
    run_dir = RunDir(Path(root) / run_config.name)
    if run_dir.exists():
        diff = first_difference(_comparable(to_dict(run_dir.load_config())),
                                _comparable(to_dict(run_config)))
        if diff:
            field, stored, new = diff
            raise ValueError(
                f"run directory {str(run_dir.path)!r} holds a run with a different {field}: "
                f"{_SHORT.repr(stored)} there, {_SHORT.repr(new)} in this config; choose "
                "another run name or root, or delete the folder"
            )
    run_dir.create()
    run_dir.save_config(run_config)
    return run_dir


def as_run_dir(run_dir) -> RunDir:
    """``run_dir`` as a `RunDir` (a path is opened as one)."""
    return run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
