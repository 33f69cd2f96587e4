"""`update_best` on a validation where every segmentation is degenerate says so in one
warning line, not one per criterion (issue 21 item 7: a degenerate validation of a Distance
task logged a line for each of its 21 criteria, beside the aggregated one)."""

from __future__ import annotations

import logging

from dacapo.runs.run_dir import RunDir
from dacapo.runs.scores import update_best


def test_all_degenerate_is_one_warning_line(tmp_path, tiny_run, caplog):
    run_dir = RunDir(tmp_path / "run").create()
    rc = tiny_run(tmp_path / "data.zarr")
    run_dir.save_config(rc)
    task = rc.task_config.build()
    criteria = task.evaluation_scores.criteria
    rows = [{"iteration": 4, "dataset": "validate", "criterion": c, "value": 0.5,
             "degenerate": 1, "parameters": {"type": "ThresholdPostProcessorParameters",
                                             "id": i, "threshold": t}}
            for i, t in enumerate((-0.5, 0.0, 0.5)) for c in criteria]
    run_dir.replace_validation_scores(4, rows)
    with caplog.at_level(logging.WARNING, logger="dacapo.runs.scores"):
        best = update_best(run_dir, task)
    stored = [c for c in criteria if task.evaluation_scores.store_best(c)]
    assert len(stored) > 3 and sorted(best) == sorted(stored)
    assert all(best[c]["degenerate"] for c in stored)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert f"degenerate ((near-)constant) for {len(stored)} criteria" in warnings[0]
    assert all(c in warnings[0] for c in stored[:6]) and f"and {len(stored) - 6} more" in warnings[0]
