"""`dacapo.scores`: the score table and plots ask the task which direction is better."""

from __future__ import annotations

from pipeline_fixtures import tiny_run

from dacapo.plots import best_per_iteration, plot_criteria
from dacapo.scores import format_table, main_criteria, parameters_label
from dacapo.store.run_dir import RunDir


def _run_dir(tmp_path, values: dict[float, float], criterion: str) -> RunDir:
    run_dir = RunDir(tmp_path / "run").create()
    run_dir.save_config(tiny_run(tmp_path / "data.zarr"))
    rows = [{"iteration": 4, "dataset": "validate", "criterion": criterion, "value": v,
             "parameters": {"type": "ThresholdPostProcessorParameters", "id": i,
                            "threshold": t}}
            for i, (t, v) in enumerate(values.items())]
    run_dir.replace_validation_scores(4, rows)
    return run_dir


def test_table_takes_the_direction_from_the_task_without_best_json(tmp_path):
    # Hausdorff distance: lower is better; best.json (which also records it) is absent
    run_dir = _run_dir(tmp_path, {-0.5: 5.0, 0.0: 2.0, 0.5: 3.0}, "cell__hausdorff")
    assert run_dir.load_best() == {}
    line = next(line for line in format_table(run_dir).splitlines() if "cell__hausdorff" in line)
    assert "2.0000" in line and "threshold=0.0" in line, line


def test_criteria_plot_uses_the_task_direction(tmp_path):
    run_dir = _run_dir(tmp_path, {-0.5: 5.0, 0.0: 2.0}, "cell__hausdorff")
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
