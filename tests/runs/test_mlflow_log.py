"""MLflow tracking against a real SQLite-backed store (the ``tracked_run`` fixture: 4
iterations with `MlflowTracker`, validated at 4, checkpoint 4 removed as if killed after
logging step 4, resumed from 2 to 6 by ``dacapo train CONFIG --mlflow``): one MLflow run,
continued, its parameters, metrics and artifacts compared with the run directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from dacapo.runs.mlflow_log import flat_params, log_to_tracked_run, metric_key, tracking_uri
from dacapo.runs.scores import choose_parameters, main_criterion


@pytest.fixture(scope="module")
def store(tracked_run):
    """(client, the one MLflow run) of the default store under the root."""
    uri = f"sqlite:///{tracked_run.root.resolve() / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("dacapo")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1  # the resumed training continued it
    return client, runs[0]


def test_tracking_uri_has_one_meaning(tmp_path):
    assert tracking_uri(None, tmp_path) is None
    expected = "sqlite:///" + str(tmp_path.resolve() / "mlflow.db")
    assert tracking_uri("default", tmp_path) == tracking_uri("", tmp_path) == expected
    assert tracking_uri("http://localhost:5000", tmp_path) == "http://localhost:5000"
    assert metric_key("a b/c:d.e-f_g") == "a b/c:d.e-f_g" and metric_key("x(1)") == "x_1_"
    assert flat_params({"a": {"b": 1, "c": [1, 2]}, "d": "x"}) == {"a.b": "1", "a.c": "[1, 2]",
                                                                   "d": "x"}


def test_resumed_training_continues_the_run(tracked_run, store):
    _, run = store
    record = json.loads((tracked_run.run_dir.path / "mlflow.json").read_text())
    assert record == tracked_run.first_mlflow and record["run_id"] == run.info.run_id
    assert record["tracking_uri"] == tracking_uri("default", tracked_run.root)
    assert run.info.status == "FINISHED" and run.info.run_name == tracked_run.run_dir.path.name
    params = run.data.params
    assert params["name"] == "tiny" and params["num_iterations"] == "4"  # the first start's
    assert float(params["trainer_config.learning_rate"]) == tracked_run.learning_rate
    assert params["trainer_config.warmup_iterations"] == str(tracked_run.warmup)
    assert params["task_config.channels"] == '["cell"]'


def test_step_metrics_are_the_csv_rows_once(tracked_run, store):
    client, run = store
    stats, first = tracked_run.run_dir.training_stats(), tracked_run.first_stats

    def history(key):
        return sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)

    loss = history("loss")
    assert [m.step for m in loss] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([m.value for m in loss], [r["loss"] for r in stats], rtol=1e-5)
    lr = [m.value for m in history("learning_rate")]
    np.testing.assert_allclose(lr, [tracked_run.learning_rate * i / tracked_run.warmup
                                    for i in range(1, 7)], rtol=1e-6)
    # steps 1-4 are the first process's (the resumed one repeats 3-4 and does not log
    # them again), 5-6 the resumed one's: differences of the csv times within a process
    times = [r["time"] for r in first] + [r["time"] for r in stats[4:]]
    expected = [times[0], *np.diff(times[:4]), times[4] - stats[3]["time"], times[5] - times[4]]
    seconds = [m.value for m in history("seconds_per_iteration")]
    np.testing.assert_allclose(seconds, expected, atol=2e-3)


def test_validation_metrics_are_the_chosen_rows(tracked_run, store):
    client, run = store
    run_dir = tracked_run.run_dir
    rows = [r for r in run_dir.validation_scores() if r["iteration"] == 4]
    task = run_dir.load_config().task_config.build()
    main = main_criterion(task)
    chosen = choose_parameters(rows, main, task.evaluation_scores.higher_is_better(main))
    at = {f"validate/{r['criterion']}": r["value"] for r in rows
          if r["parameters"] == chosen["parameters"]}
    assert {k for k in run.data.metrics if "/" in k} == set(at)
    for key, value in at.items():
        (metric,) = client.get_metric_history(run.info.run_id, key)  # once, though validated twice
        assert metric.step == 4
        np.testing.assert_allclose(metric.value, value, rtol=1e-6, equal_nan=True)


def test_artifacts_are_the_run_files(tracked_run, store, tmp_path):
    client, run = store
    run_dir = tracked_run.run_dir
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"run.yaml", "best.json", "plots"} <= names
    plots = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {p.name for p in run_dir.plots.iterdir()}
    for name in ("run.yaml", "best.json"):
        local = client.download_artifacts(run.info.run_id, name, str(tmp_path))
        assert Path(local).read_text() == (run_dir.path / name).read_text()
    # the default store keeps its artifacts under the root
    assert (tracked_run.root / "mlartifacts").is_dir()



def test_a_package_goes_to_the_tracked_run(tracked_run, store, tmp_path):
    client, run = store
    package = tmp_path / "model.zip"  # what `dacapo export` of a tracked run hands on
    package.write_bytes(b"PK" + bytes(range(100)))
    assert log_to_tracked_run(tracked_run.run_dir, package, "package") == run.info.run_id
    (artifact,) = client.list_artifacts(run.info.run_id, "package")
    assert artifact.path == "package/model.zip" and artifact.file_size == 102
