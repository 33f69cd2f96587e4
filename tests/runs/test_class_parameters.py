"""The checkpoint of the joined per-class settings (`dacapo.runs.class_parameters`): chosen
by the overall score of what ``apply`` writes, against hand-computed scores."""

from __future__ import annotations

import math

import pytest

from dacapo.experiments.tasks import OneHotTaskConfig
from dacapo.runs.class_parameters import (
    best_joined_iteration,
    joined_lines,
    joined_overall,
    output_checkpoint_and_parameters,
)
from dacapo.runs.run_dir import RunDir
from dacapo.runs.scores import parameters_dict, update_best

#: iteration -> parameter set index -> (bg, cell, membrane) ``__score``; cell is an instance class
SCORES = {
    10: [(0.9, 0.5, 0.6), (0.5, 0.9, 0.5)],
    20: [(0.8, 0.8, 0.7), (0.7, 0.7, 0.6)],
    30: [(1.0, 1.0, 1.0), (1.0, 1.0, 1.0)],  # validated, but its checkpoint is gone
}


def _task():
    return OneHotTaskConfig("o", classes=["bg", "cell", "membrane"], instance_classes=["cell"],
                            instance_min_sizes=[0]).build()


def _rows(task, iteration, table, dataset="crop"):
    rows = []
    for p, (bg, cell, membrane) in zip(task.parameters, table):
        values = {"bg__score": bg, "cell__score": cell, "membrane__score": membrane,
                  "overall_score": math.sqrt(cell * (bg + membrane) / 2)}
        rows += [{"iteration": iteration, "dataset": dataset, "parameters": parameters_dict(p),
                  "criterion": c, "value": v, "scored_roi": "", "gt_fraction": 1.0,
                  "degenerate": 0} for c, v in values.items()]
    return rows


def test_the_joined_settings_choose_the_checkpoint(tmp_path):
    task = _task()
    run_dir = RunDir(tmp_path / "run").create()
    for iteration in (10, 20):
        run_dir.replace_validation_scores(iteration, _rows(task, iteration, SCORES[iteration]))
        run_dir.checkpoint_path(iteration).write_bytes(b"")
    # one parameter set for all classes: iteration 20 (0.775 against 0.671 at 10)
    assert update_best(run_dir, task)["overall_score"]["iteration"] == 20
    run_dir.replace_validation_scores(30, _rows(task, 30, SCORES[30]))
    rows10 = [r for r in run_dir.validation_scores() if r["iteration"] == 10]
    rows20 = [r for r in run_dir.validation_scores() if r["iteration"] == 20]
    # joined at 10: bg 0.9 (set 0), cell 0.9 (set 1), membrane 0.6 (set 0)
    assert joined_overall(rows10, task) == pytest.approx(math.sqrt(0.9 * (0.9 + 0.6) / 2))
    assert joined_overall(rows20, task) == pytest.approx(math.sqrt(0.8 * (0.8 + 0.7) / 2))
    assert best_joined_iteration(run_dir, task) == 10
    iteration, joined = output_checkpoint_and_parameters(run_dir, task)
    assert iteration == 10
    assert [joined.setting(c) for c in ("bg", "cell", "membrane")] == [
        task.parameters[0].setting("bg"), task.parameters[1].setting("cell"),
        task.parameters[0].setting("membrane")]
    # an iteration or a criterion given: as before, joined at that iteration
    assert output_checkpoint_and_parameters(run_dir, task, iteration=20)[0] == 20
    # the score table of iteration 20 says what apply takes instead
    here = f"{math.sqrt(0.8 * (0.8 + 0.7) / 2):.4f}"
    taken = f"{math.sqrt(0.9 * (0.9 + 0.6) / 2):.4f}"
    line, settings = joined_lines(run_dir, task, rows20)
    assert line.endswith(f"overall {here} here; apply takes iteration 10: overall {taken}")
    assert settings.strip().startswith(f"bg: {task.parameters[0].setting('bg').label};")


def test_datasets_are_averaged_after_the_classes_are_chosen_on_all_of_them():
    task = _task()
    rows = _rows(task, 10, SCORES[10]) + _rows(task, 10, [(0.5, 0.5, 0.5), (0.5, 0.5, 0.4)],
                                               dataset="other")
    # means over the datasets: bg 0.7 / 0.5 -> set 0, cell 0.5 / 0.7 -> set 1, membrane
    # 0.55 / 0.45 -> set 0; then per dataset sqrt(cell × mean(bg, membrane)), averaged
    expected = (math.sqrt(0.9 * 0.75) + math.sqrt(0.5 * 0.5)) / 2
    assert joined_overall(rows, task) == pytest.approx(expected)
    assert math.isnan(joined_overall([], task))
