"""Fixtures of the run tests: one tiny run tracked in TensorBoard and MLflow, interrupted
and resumed, shared by ``test_tensorboard_log.py`` and ``test_mlflow_log.py``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import attr
import pytest
from click.testing import CliRunner

from dacapo.cli.main import cli
from dacapo.io.config_yaml import to_yaml
from dacapo.runs.mlflow_log import MlflowTracker
from dacapo.runs.run_dir import RunDir
from dacapo.training.loop import train_run

LR, WARMUP = 1e-3, 6


@dataclass
class TrackedRun:
    run_dir: RunDir
    root: Path
    first_stats: list[dict]  # training_stats.csv of the first process
    first_mlflow: dict  # mlflow.json after the first process
    cli_output: str
    learning_rate: float = LR
    warmup: int = WARMUP


@pytest.fixture(scope="session")
def tracked_run(tmp_path_factory, tiny_data, tiny_run) -> TrackedRun:
    """A tiny run (learning rate warm-up over 6 iterations) trained for 4 iterations and
    validated at 4, with MLflow (``train_run(trackers=[MlflowTracker()])``: the SQLite
    store under the root); its checkpoint 4 removed (as if killed after step 4 was
    logged); then resumed from 2 to 6 by ``dacapo train CONFIG --mlflow`` (in this
    process), which validates 4 again."""
    root = tmp_path_factory.mktemp("tracked")
    container = tiny_data(root)
    rc = tiny_run(container, num_iterations=4, validation_interval=4, checkpoint_interval=2)
    rc = attr.evolve(rc, trainer_config=attr.evolve(rc.trainer_config, learning_rate=LR,
                                                    warmup_iterations=WARMUP))
    run_dir = train_run(rc, root / "runs", progress=False, trackers=[MlflowTracker()])
    first_stats = run_dir.training_stats()
    first_mlflow = json.loads((run_dir.path / "mlflow.json").read_text())
    run_dir.checkpoint_path(4).unlink()
    config = root / "run.yaml"
    config.write_text(to_yaml(attr.evolve(rc, num_iterations=6)))
    result = CliRunner().invoke(cli, ["train", str(config), "--root", str(root / "runs"),
                                      "--mlflow"])
    assert result.exit_code == 0, result.output
    return TrackedRun(run_dir, root / "runs", first_stats, first_mlflow, result.output)
