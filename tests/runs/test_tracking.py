"""The tracker fan-out: seconds per step, a failing tracker dropped with one warning, the
end status, and the rows a validation logs."""

from __future__ import annotations

import logging

import pytest

from dacapo.experiments.tasks import DistanceTaskConfig
from dacapo.runs.run_dir import RunDir
from dacapo.runs.scores import main_criterion
from dacapo.runs.tracking import Trackers, chosen_rows, end_status


class Recorder:
    """A tracker that records its calls; ``fail_on``: the method that raises."""

    def __init__(self, fail_on: str = "") -> None:
        self.calls: list[tuple] = []
        self.fail_on = fail_on

    def __getattr__(self, method: str):
        def call(*args):
            if method == self.fail_on:
                raise ConnectionError("server gone")
            self.calls.append((method, *args))
        return call


class Stopped(Exception):
    signum = 15


def test_trackers_pass_steps_on_and_drop_a_failing_one(tmp_path, caplog):
    good, bad = Recorder(), Recorder(fail_on="step")
    with caplog.at_level(logging.WARNING), Trackers(RunDir(tmp_path), [good, bad]) as t:
        t.start("config", 2)
        for iteration, elapsed in ((3, 1.5), (4, 1.75), (5, 2.5)):
            t.step(iteration, 0.1, 1e-3, elapsed)
        t.validation(4, [])
    steps = [c for c in good.calls if c[0] == "step"]
    assert [c[4] for c in steps] == pytest.approx([1.5, 0.25, 0.75])  # seconds between steps
    method, config, run_dir, start = good.calls[0]
    assert (method, config, run_dir.path, start) == ("start", "config", tmp_path, 2)
    assert good.calls[-1] == ("end", "FINISHED") and ("validation", 4, []) in good.calls
    assert [c[0] for c in bad.calls] == ["start"]  # dropped at its first failure, never ended
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "server gone" in warnings[0].getMessage()


def test_end_status():
    assert end_status(None) == "FINISHED"
    assert end_status(Stopped()) == end_status(KeyboardInterrupt()) == "KILLED"
    assert end_status(ValueError("x")) == "FAILED"
    rec = Recorder()
    with pytest.raises(Stopped), Trackers(RunDir("."), [rec]) as t:
        t.start(None, 0)
        raise Stopped()
    assert rec.calls[-1] == ("end", "KILLED")


def test_chosen_rows_are_the_main_criterion_choice_on_the_mean_over_datasets():
    task = DistanceTaskConfig("d", channels=["cell"], clip_distance=40, tol_distance=16,
                              scale_factor=20).build()
    main = main_criterion(task)
    higher = task.evaluation_scores.higher_is_better(main)

    def v(x):  # a score x where higher is better, mirrored where lower is
        return x if higher else 1 - x

    def row(dataset, p, criterion, value):
        return {"iteration": 4, "dataset": dataset, "parameters": {"id": p},
                "criterion": criterion, "value": value}

    # set 1 is best on "a" alone (1.0); set 0 on the mean: (0.5 + 0.9) / 2 > (1.0 + 0.2) / 2
    rows = [row("a", 0, main, v(0.5)), row("a", 0, "other", 1.0),
            row("a", 1, main, v(1.0)), row("a", 1, "other", 2.0),
            row("b", 0, main, v(0.9)), row("b", 0, "other", 3.0),
            row("b", 1, main, v(0.2)), row("b", 1, "other", 4.0)]
    chosen = chosen_rows(rows, task)
    assert {d: {r["criterion"]: r["value"] for r in rs} for d, rs in chosen.items()} == {
        "a": {main: v(0.5), "other": 1.0}, "b": {main: v(0.9), "other": 3.0}}
