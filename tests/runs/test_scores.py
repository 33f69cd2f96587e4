"""`dacapo.runs.scores`: the score table and plots ask the task which direction is better."""

from __future__ import annotations

import numpy as np

from dacapo.pipeline.validate import is_degenerate
from dacapo.runs.plots import best_per_iteration, plot_criteria
from dacapo.runs.run_dir import RunDir
from dacapo.runs.scores import (
    choose_parameters,
    format_table,
    main_criteria,
    parameters_label,
    update_best,
)


def _run_dir(tiny_run, tmp_path, values: dict[float, float], criterion: str) -> RunDir:
    run_dir = RunDir(tmp_path / "run").create()
    run_dir.save_config(tiny_run(tmp_path / "data.zarr"))
    rows = [{"iteration": 4, "dataset": "validate", "criterion": criterion, "value": v,
             "parameters": {"type": "ThresholdPostProcessorParameters", "id": i,
                            "threshold": t}}
            for i, (t, v) in enumerate(values.items())]
    run_dir.replace_validation_scores(4, rows)
    return run_dir


def test_table_takes_the_direction_from_the_task_without_best_json(tmp_path, tiny_run):
    # Hausdorff distance: lower is better; best.json (which also records it) is absent
    run_dir = _run_dir(tiny_run, tmp_path, {-0.5: 5.0, 0.0: 2.0, 0.5: 3.0}, "cell__hausdorff")
    assert run_dir.load_best() == {}
    line = next(line for line in format_table(run_dir).splitlines() if "cell__hausdorff" in line)
    assert "2.0000 threshold=0.0" in line, line  # the sweep's best: the lowest


def test_criteria_plot_uses_the_task_direction(tmp_path, tiny_run):
    run_dir = _run_dir(tiny_run, tmp_path, {-0.5: 5.0, 0.0: 2.0}, "cell__hausdorff")
    run_dir.save_best({"cell__hausdorff": {"iteration": 4, "dataset": "validate",
                                           "parameters": {}, "value": 2.0}})  # no direction
    rows = run_dir.validation_scores()
    assert best_per_iteration(rows, "cell__hausdorff", "validate", False) == ([4], [2.0])
    path = plot_criteria(run_dir)  # asks the task (lower is better), not best.json
    assert path is not None and path.stat().st_size > 0


def test_main_criteria_order_and_labels():
    crit = ["cell__recall", "cell__dice", "voi", "frizz_level"]
    assert main_criteria(crit, 2) == ["voi", "cell__dice"]
    assert main_criteria(["frizz_level", "blipp_score"], 1) == ["frizz_level"]  # fallback
    assert parameters_label({"type": "T", "id": 3, "threshold": 0.5}) == "threshold=0.5"


def test_degenerate_parameters_are_flagged_and_never_chosen(tmp_path, tiny_run):
    # the threshold 0.5 segmented nothing (constant): its dice is NaN-free but meaningless
    run_dir = _run_dir(tiny_run, tmp_path, {0.0: 0.7, 0.5: 0.9}, "cell__dice")
    rows = run_dir.validation_scores()
    rows[1]["degenerate"] = True
    run_dir.replace_validation_scores(4, rows)
    assert [r["degenerate"] for r in run_dir.validation_scores()] == [False, True]
    assert choose_parameters(run_dir.validation_scores(), "cell__dice", True)["value"] == 0.7
    table = format_table(run_dir)
    assert "threshold=0.0" in table.splitlines()[1] and "DEGENERATE" not in table
    best = update_best(run_dir, run_dir.load_config().task_config.build())
    assert best["cell__dice"]["value"] == 0.7


def test_is_degenerate():
    from funlib.persistence import Array

    gt = Array(np.array([[0, 1], [1, 1]], np.uint8), voxel_size=(1, 1))
    assert is_degenerate(Array(np.zeros((2, 2), np.uint8), voxel_size=(1, 1)), gt)
    assert is_degenerate(Array(np.full((2, 2), 7, np.uint64), voxel_size=(1, 1)), gt)
    assert not is_degenerate(Array(np.eye(2, dtype=np.uint8), voxel_size=(1, 1)), gt)
    flat = Array(np.zeros((2, 2), np.uint8), voxel_size=(1, 1))
    assert not is_degenerate(flat, flat)  # nothing to find: a constant answer is right


def test_best_json_names_a_degenerate_choice_only_when_there_is_no_other(tmp_path, tiny_run):
    run_dir = _run_dir(tiny_run, tmp_path, {0.0: 0.7, 0.5: 0.9}, "cell__dice")
    rows = run_dir.validation_scores()
    for r in rows:
        r["degenerate"] = True
    run_dir.replace_validation_scores(4, rows)
    best = update_best(run_dir, run_dir.load_config().task_config.build())
    assert best["cell__dice"]["value"] == 0.9 and best["cell__dice"]["degenerate"] is True


def test_best_json_chooses_on_the_mean_over_datasets(tmp_path, tiny_run):
    # Dice per (iteration, threshold, dataset), means by hand: the best single row (1.0 on
    # "a" at 4, t 0.0) is not the best mean; (8, t 0.5) is (0.85), then (4, t 0.5) (0.8)
    run_dir = RunDir(tmp_path / "run").create()
    run_dir.save_config(tiny_run(tmp_path / "data.zarr"))
    dice = {(4, 0.0): (1.0, 0.4), (4, 0.5): (0.8, 0.8),
            (8, 0.0): (0.95, 0.3), (8, 0.5): (0.85, 0.85)}

    def rows(iteration, degenerate=()):
        return [{"iteration": iteration, "dataset": ds, "criterion": "cell__dice",
                 "value": values[k], "degenerate": (iteration, t, ds) in degenerate,
                 "parameters": {"type": "ThresholdPostProcessorParameters", "id": int(2 * t),
                                "threshold": t}}
                for (it, t), values in dice.items() if it == iteration
                for k, ds in enumerate(("a", "b"))]

    task = run_dir.load_config().task_config.build()
    run_dir.replace_validation_scores(4, rows(4))
    run_dir.replace_validation_scores(8, rows(8))
    best = update_best(run_dir, task)["cell__dice"]
    assert (best["iteration"], best["parameters"]["threshold"]) == (8, 0.5)
    assert best["value"] == 0.85 and best["datasets"] == {"a": 0.85, "b": 0.85}
    table = format_table(run_dir)
    assert "on the mean over 2 datasets: threshold=0.5" in table.splitlines()[0]
    # degenerate on one dataset: never the choice while another set is scored
    run_dir.replace_validation_scores(8, rows(8, degenerate={(8, 0.5, "b")}))
    best = update_best(run_dir, task)["cell__dice"]
    assert (best["iteration"], best["parameters"]["threshold"], best["value"]) == (4, 0.5, 0.8)
    assert "degenerate" not in best
    rows_at_8 = [r for r in run_dir.validation_scores() if r["iteration"] == 8]
    chosen = choose_parameters(rows_at_8, "cell__dice", True)
    assert chosen["parameters"]["threshold"] == 0.0 and chosen["value"] == 0.625


def test_labels_name_the_swept_parameters_only():
    from dacapo.runs.scores import varying_keys

    rows = [{"parameters": {"type": "P", "id": i, "h": None, "min_seed_distance": 0.0,
                            "threshold": t}} for i, t in enumerate((0.1, 0.5))]
    assert varying_keys(rows) == {"threshold"}
    assert parameters_label(rows[1]["parameters"], varying_keys(rows)) == "threshold=0.5"
    assert parameters_label(rows[1]["parameters"]) == "h=None, min_seed_distance=0.0, threshold=0.5"


def test_a_choice_made_without_a_dataset_is_said(tmp_path, tiny_run, caplog):
    import logging
    import math

    from dacapo.runs.scores import main_criterion

    run_dir = RunDir(tmp_path / "run").create()
    run_dir.save_config(tiny_run(tmp_path / "data.zarr"))
    task = run_dir.load_config().task_config.build()
    main = main_criterion(task)
    values = {0.0: (0.9, math.nan), 0.5: (0.5, 0.6)}  # NaN: undefined on "b" at t 0.0
    run_dir.replace_validation_scores(4, [
        {"iteration": 4, "dataset": ds, "criterion": main, "value": v[k],
         "parameters": {"type": "ThresholdPostProcessorParameters", "id": int(2 * t),
                        "threshold": t}}
        for t, v in values.items() for k, ds in enumerate(("a", "b"))])
    with caplog.at_level(logging.WARNING, logger="dacapo.runs.scores"):
        best = update_best(run_dir, task)[main]
    assert best["datasets"] == {"a": 0.9} and best["parameters"]["threshold"] == 0.0
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == (f"{main} is undefined (NaN) on dataset(s) b at its best setting: chosen on "
                    "the mean over the other 1")
