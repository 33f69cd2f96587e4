"""Experiment tracking of a training run: what the loop tells trackers, and when.

A tracker (`Tracker`: TensorBoard by default, `dacapo.runs.tensorboard_log`; MLflow when
asked, `dacapo.runs.mlflow_log`) is told the start (config, run directory, the iteration
training starts from), every step (loss, learning rate, seconds since the previous step),
every validation's score rows, a flush before each checkpoint, and the end with a status
(``FINISHED``; ``KILLED`` after a stop signal or Ctrl-C; ``FAILED``). `Trackers` passes
each call on to all of them. A tracker that fails after its start (a tracking server
gone) is dropped with one warning: tracking never ends a training; a failed start is an
error before the first step.
"""

from __future__ import annotations

import json
import logging
from typing import Protocol

from dacapo.runs.run_dir import RunDir
from dacapo.runs.scores import choose_parameters, main_criterion

logger = logging.getLogger(__name__)


class Tracker(Protocol):
    """What `Trackers` calls; see the module."""

    def start(self, run_config, run_dir: RunDir, start: int) -> None: ...

    def step(self, iteration: int, loss: float, learning_rate: float, seconds: float) -> None: ...

    def validation(self, iteration: int, rows: list[dict]) -> None: ...

    def flush(self) -> None: ...

    def end(self, status: str) -> None: ...


def end_status(error: BaseException | None) -> str:
    """``FINISHED`` (no error), ``KILLED`` (a stop signal: an error with a ``signum``, or
    Ctrl-C) or ``FAILED``."""
    if error is None:
        return "FINISHED"
    if isinstance(error, KeyboardInterrupt) or hasattr(error, "signum"):
        return "KILLED"
    return "FAILED"


class Trackers:
    """All trackers of one training process (none on the ranks > 0 of a data-parallel run);
    a context manager that ends them with `end_status` of the error leaving it."""

    def __init__(self, run_dir: RunDir, trackers=()) -> None:
        self.run_dir = run_dir
        self.trackers: list[Tracker] = list(trackers)
        self._started: list[Tracker] = []
        self._last = 0.0

    def start(self, run_config, start: int) -> None:
        for t in self.trackers:
            t.start(run_config, self.run_dir, start)
            self._started.append(t)

    def step(self, iteration: int, loss: float, learning_rate: float, elapsed: float) -> None:
        """Step ``iteration`` done ``elapsed`` seconds after this process began training."""
        seconds, self._last = elapsed - self._last, elapsed
        self._each("step", iteration, loss, learning_rate, seconds)

    def validation(self, iteration: int, rows: list[dict]) -> None:
        self._each("validation", iteration, rows)

    def flush(self) -> None:
        self._each("flush")

    def _each(self, method: str, *args) -> None:
        for t in list(self._started):
            try:
                getattr(t, method)(*args)
            except Exception as e:  # noqa: BLE001 - tracking never ends a training
                logger.warning("%s failed (%s: %s); it tracks nothing more in this run",
                               type(t).__name__, type(e).__name__, e)
                self._started.remove(t)

    def __enter__(self) -> Trackers:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self._each("end", end_status(error))
        self._started = []


def chosen_rows(rows: list[dict], task) -> dict[str, list[dict]]:
    """Per dataset of ``rows`` (one validation), its rows at the parameters the task's main
    criterion chooses on the mean over the datasets (`dacapo.runs.scores.choose_parameters`,
    as ``dacapo validate``'s table): what trackers log of a validation."""
    main = main_criterion(task)
    higher = task.evaluation_scores.higher_is_better(main)
    chosen = choose_parameters(rows, main, higher) or rows[0]
    key = json.dumps(chosen["parameters"], sort_keys=True)
    out = {}
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        out[dataset] = [r for r in rows if r["dataset"] == dataset
                        and json.dumps(r["parameters"], sort_keys=True) == key]
    return out
