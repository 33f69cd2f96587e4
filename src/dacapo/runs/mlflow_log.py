"""MLflow tracking of a training run, when asked: ``dacapo train CONFIG --mlflow [URI]``.

Needs the ``mlflow`` extra (``pip install 'dacapo-tasks[mlflow]'``); this module imports
mlflow, so it is imported only where tracking is asked (the CLI).

Where (`tracking_uri`, the one meaning of the setting): ``default`` (``--mlflow`` alone)
is a SQLite store next to the run directories, ``<root>/mlflow.db``, its artifacts in
``<root>/mlartifacts/`` (``mlflow ui --backend-store-uri sqlite:///<root>/mlflow.db``);
any other value is a tracking URI as MLflow reads it (``http://host:5000``,
``sqlite:///path/to/mlflow.db``). Runs go to the experiment ``$MLFLOW_EXPERIMENT_NAME``
(default ``dacapo``), named after the run.

What (`MlflowTracker`): parameters (the run config flattened, ``trainer_config.
learning_rate``; the first start's values), the metrics ``loss``, ``learning_rate`` and
``seconds_per_iteration`` per iteration (sent in batches: every `FLUSH_SECONDS`, before
each checkpoint, at validations and at the end), ``<dataset>/<criterion>`` per
validation at the parameters the main criterion chooses (as TensorBoard,
`dacapo.runs.tracking.chosen_rows`), and the artifacts ``run.yaml``, ``best.json``
(after each validation) and ``plots/`` (at the end). The MLflow run ends FINISHED,
KILLED (stop signal) or FAILED. ``dacapo export`` of a tracked run adds the package
(``package/<file>``, `log_to_tracked_run`).

Resume: ``<run>/mlflow.json`` holds the tracking URI and MLflow run id; a resumed
training tracked at the same URI continues that MLflow run (back to RUNNING), and steps
and validations it has logged already are not logged again (an interrupted process may
have sent steps after its last checkpoint; the resumed run repeats them, with the same
losses and scores: the values of the first process stay).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from dacapo.errors import ConfigError
from dacapo.io.arrays import atomic_write_text
from dacapo.io.config_yaml import to_dict
from dacapo.runs.run_dir import RunDir
from dacapo.runs.tracking import chosen_rows

logger = logging.getLogger(__name__)

#: the setting that means the SQLite store under the runs root
DEFAULT = "default"
#: the file in the run directory naming its MLflow run
RECORD = "mlflow.json"
#: seconds between two batches of step metrics sent
FLUSH_SECONDS = 30.0
#: MLflow's limits: metrics per batch, parameters per batch, characters of a value
MAX_METRICS, MAX_PARAMS, MAX_VALUE = 1000, 100, 6000


def tracking_uri(setting: str | None, root: str | Path) -> str | None:
    """The tracking URI ``setting`` means for runs under ``root``: None (not tracked),
    ``default`` or empty (``sqlite:///<root>/mlflow.db``, absolute), else ``setting``."""
    if setting is None:
        return None
    if setting in ("", DEFAULT):
        return f"sqlite:///{(Path(root) / 'mlflow.db').resolve()}"
    return setting


def metric_key(name: str) -> str:
    """``name`` with the characters MLflow refuses in a key replaced by ``_``."""
    return re.sub(r"[^\w\-. :/]", "_", name)


def flat_params(config: Any, prefix: str = "") -> dict[str, str]:
    """A config dict flattened to ``{"a.b": "value"}``; lists as JSON (cut to `MAX_VALUE`)."""
    if isinstance(config, dict):
        out: dict[str, str] = {}
        for key, value in config.items():
            out.update(flat_params(value, f"{prefix}{key}."))
        return out
    text = config if isinstance(config, str) else json.dumps(config)
    return {metric_key(prefix[:-1]): text[:MAX_VALUE]}


class MlflowTracker:
    """A `dacapo.runs.tracking.Tracker` logging to MLflow (see the module); ``setting``:
    as `tracking_uri`."""

    def __init__(self, setting: str | None = DEFAULT) -> None:
        self.setting = DEFAULT if setting is None else setting
        self.buffer: list[Metric] = []
        self.logged = self.validated = 0  # steps and validations in the store already
        self._sent = time.monotonic()

    def start(self, run_config, run_dir: RunDir, start: int) -> None:
        self.run_dir, self.task = run_dir, run_config.task_config.build()
        self.uri = tracking_uri(self.setting, run_dir.path.parent)
        self.client = MlflowClient(self.uri)
        try:
            self.run_id = self._continued() or self._created(run_config.name)
            params = flat_params(to_dict(run_config))
            known = self.client.get_run(self.run_id).data.params
            new = [Param(k, v) for k, v in params.items() if k not in known]
            for i in range(0, len(new), MAX_PARAMS):
                self.client.log_batch(self.run_id, params=new[i:i + MAX_PARAMS])
            self.client.log_artifact(self.run_id, str(run_dir.config_file))
        except MlflowException as e:
            raise ConfigError(f"mlflow tracking at {self.uri!r}: {e.message}") from None
        logger.info("mlflow: run %s in %s", self.run_id, self.uri)

    def _continued(self) -> str | None:
        """The run id in ``mlflow.json`` when it is of this store and the run exists (then
        RUNNING again, `logged` its last step), else None."""
        record = self.run_dir.path / RECORD
        stored = json.loads(record.read_text()) if record.is_file() else {}
        if stored.get("tracking_uri") != self.uri:
            return None
        try:
            run = self.client.get_run(stored["run_id"])
        except MlflowException:
            logger.warning("mlflow: run %s of %s is gone; starting a new one",
                           stored["run_id"], RECORD)
            return None
        self.client.update_run(run.info.run_id, status="RUNNING")
        self.logged = self._last_step(run, "loss")
        self.validated = self._last_step(run, next((k for k in run.data.metrics if "/" in k), ""))
        return run.info.run_id

    def _last_step(self, run, key: str) -> int:
        """The last step of metric ``key`` of ``run`` (0: none)."""
        if key not in run.data.metrics:
            return 0
        return max(m.step for m in self.client.get_metric_history(run.info.run_id, key))

    def _created(self, name: str) -> str:
        """A new MLflow run named ``name`` in the experiment, recorded in ``mlflow.json``."""
        experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME", "dacapo")
        found = self.client.get_experiment_by_name(experiment)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            local = self.uri.startswith("sqlite:") and self.setting in ("", DEFAULT)
            where = (self.run_dir.path.parent / "mlartifacts").resolve().as_uri() if local else None
            experiment_id = self.client.create_experiment(experiment, artifact_location=where)
        run_id = self.client.create_run(experiment_id, run_name=name).info.run_id
        atomic_write_text(self.run_dir.path / RECORD, json.dumps(
            {"tracking_uri": self.uri, "experiment_id": experiment_id, "run_id": run_id},
            indent=2) + "\n")
        return run_id

    def step(self, iteration: int, loss: float, learning_rate: float, seconds: float) -> None:
        if iteration <= self.logged:
            return
        now = int(time.time() * 1000)
        self.buffer += [Metric("loss", loss, now, iteration),
                        Metric("learning_rate", learning_rate, now, iteration),
                        Metric("seconds_per_iteration", seconds, now, iteration)]
        if time.monotonic() - self._sent > FLUSH_SECONDS:
            self.flush()

    def validation(self, iteration: int, rows: list[dict]) -> None:
        if iteration <= self.validated:  # logged by the process this one resumes
            return
        now = int(time.time() * 1000)
        for dataset, chosen in chosen_rows(rows, self.task).items():
            self.buffer += [Metric(metric_key(f"{dataset}/{r['criterion']}"), r["value"], now,
                                   iteration) for r in chosen]
        self.flush()
        if self.run_dir.best_file.is_file():
            self.client.log_artifact(self.run_id, str(self.run_dir.best_file))

    def flush(self) -> None:
        for i in range(0, len(self.buffer), MAX_METRICS):
            self.client.log_batch(self.run_id, metrics=self.buffer[i:i + MAX_METRICS])
        self.buffer, self._sent = [], time.monotonic()

    def end(self, status: str) -> None:
        self.flush()
        for path in (self.run_dir.config_file, self.run_dir.best_file):
            if path.is_file():
                self.client.log_artifact(self.run_id, str(path))
        if self.run_dir.plots.is_dir() and any(self.run_dir.plots.iterdir()):
            self.client.log_artifacts(self.run_id, str(self.run_dir.plots), "plots")
        self.client.set_terminated(self.run_id, status)



def log_to_tracked_run(run_dir: RunDir, path: Path, artifact_path: str | None = None) -> str:
    """Log the file ``path`` (a bioimage.io package ``dacapo export`` wrote) as an artifact
    of the MLflow run ``<run>/mlflow.json`` names; returns that run's id."""
    stored = json.loads((run_dir.path / RECORD).read_text())
    MlflowClient(stored["tracking_uri"]).log_artifact(stored["run_id"], str(path), artifact_path)
    return stored["run_id"]
