"""Validation flags (near-)constant segmentations: one warning line, a flag in every row,
never the best choice while another parameter set is scored."""

from __future__ import annotations

import json
import logging

import attr
import numpy as np

from dacapo.io.ome_write import open_ds
from dacapo.pipeline.validate import validate_run
from dacapo.runs.scores import dominant
from dacapo.training.loop import train_run


def test_near_constant_threshold_is_flagged_once_and_never_best(tmp_path, tiny_data, tiny_run,
                                                                caplog):
    container = tiny_data(tmp_path)
    rc = tiny_run(container, num_iterations=3, checkpoint_interval=3)
    run_dir = train_run(rc, tmp_path / "runs", progress=False, validate=False)
    validate_run(run_dir, 3, run_config=rc)
    folder = run_dir.predictions / "00000003" / "validate.zarr"
    prediction = open_ds(str(folder / "prediction"), mode="r")
    values = np.sort(np.asarray(prediction[prediction.roi]).ravel())
    # a threshold below all but 0.3 % of the prediction: nearly everything is foreground,
    # but not all (the old check saw only exactly constant segmentations)
    low = float(values[int(0.003 * values.size)])
    mid = float(values[values.size // 4])  # ~75 % foreground (the gt: 59 %)
    task = attr.evolve(rc.task_config, thresholds=[low, mid])
    rc = attr.evolve(rc, task_config=task)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        rows = validate_run(run_dir, 3, run_config=rc)
    seg = open_ds(str(folder / "segmentation_0"), mode="r")
    assert 0.99 <= dominant(np.asarray(seg[seg.roi]))[1] < 1.0
    seg = open_ds(str(folder / "segmentation_1"), mode="r")
    assert dominant(np.asarray(seg[seg.roi]))[1] < 0.9
    flags = {r["parameters"]["threshold"]: r["degenerate"] for r in rows}
    assert flags == {low: 1, mid: 0}
    lines = [r.getMessage() for r in caplog.records
             if "(near-)constant segmentation" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("1 of 2 parameter sets"), lines
    best = json.loads(run_dir.best_file.read_text())
    assert best["cell__recall"]["parameters"]["threshold"] == mid  # recall 1.0 is not chosen
    assert all(entry["parameters"]["threshold"] == mid for entry in best.values())
