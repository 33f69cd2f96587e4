"""The built-in demo (`run_demo`): synthetic 3D data, then train → validate → apply two tasks.

The data: `dacapo.cli.demo_data` (touching blob-shaped cells with dark membranes); the runs:
`dacapo.cli.demo_configs` (a Distance task and an Affinities task with LSDs, each a small 3D
UNet trained on CPU). Each run is validated over its post-processing sweep and applied
blockwise to the validation raw with its best checkpoint/parameters; that output is scored
against the validation GT here. Score tables printed, plots in each run's ``plots/``.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import numpy as np
from funlib.persistence import Array

from dacapo.cli.demo_configs import demo_run_configs
from dacapo.cli.demo_data import TRAIN_SHAPE, VALIDATE_SHAPE, make_demo_data
from dacapo.io.arrays import open_array
from dacapo.pipeline.apply import apply_run
from dacapo.pipeline.predict_options import PredictOptions
from dacapo.runs.scores import format_table
from dacapo.tools.export.bioimageio import export_run
from dacapo.training.loop import train_run

logger = logging.getLogger(__name__)


#: criterion, goal and whether higher is better, per demo run
DEMO_CRITERIA = {"demo_distance": ("cell__dice", 0.9, True),
                 "demo_affinities": ("voi", 0.5, False)}
TIME_GOAL_S = 300


def evaluate_output(run_config, output_path: str | Path) -> float:
    """The demo criterion of ``output_path`` (an applied segmentation) against the
    validation GT, on the output's ROI, with the task's own evaluator."""
    task = run_config.task_config.build()
    output = open_array(output_path, "segmentation")
    gt = open_array(run_config.datasplit_config.validate[0].gt, "gt")
    roi = output.roi.intersect(gt.roi)

    def crop(a: Array) -> Array:
        return Array(np.asarray(a.to_ndarray(roi)), roi.offset, a.voxel_size,
                     axis_names=a.axis_names, units=a.units)

    scores = task.evaluator.evaluate(crop(output), crop(gt))
    return float(scores[DEMO_CRITERIA[run_config.name][0]])


def run_demo(root: str | Path = "demo_runs", quick: bool = False, echo=print,
             train_shape=TRAIN_SHAPE, validate_shape=VALIDATE_SHAPE,
             num_workers: int = 2) -> dict:
    """Generate data, train/validate/apply both demo runs; returns the results per run.

    Each run is applied to the validation raw (blockwise, ``num_workers`` workers) with its
    best checkpoint and parameters, and that output is scored against the validation GT.
    """

    t0 = time.perf_counter()
    root = Path(root)
    echo(f"writing synthetic data to {root / 'data' / 'demo.zarr'}")
    container = make_demo_data(root, train_shape=train_shape, validate_shape=validate_shape)
    echo(f"  done ({time.perf_counter() - t0:.1f} s)")
    results: dict = {}
    for rc in demo_run_configs(root, quick):
        t1 = time.perf_counter()
        echo(f"\n== {rc.name}: {type(rc.task_config).__name__}, {rc.num_iterations} iterations")
        run_dir = train_run(rc, root, progress=sys.stderr.isatty())
        echo(format_table(run_dir))
        criterion, goal, higher = DEMO_CRITERIA[rc.name]
        out = container / "validate" / f"{rc.name}_segmentation"
        apply_run(run_dir.path, container / "validate" / "raw", out,
                  PredictOptions(num_workers=num_workers, progress=False), criterion=criterion)
        value = evaluate_output(rc, out)
        best = run_dir.load_best().get(criterion, {})
        package = run_dir.path / "model.zip"
        if not quick and not package.exists():  # a bioimage.io package of the applied model
            export_run(run_dir.path, package, criterion=criterion)
            echo(f"  exported {package} (bioimage.io; dacapo export {run_dir.path} ...)")
        results[rc.name] = {
            "criterion": criterion,
            "value": value,
            "goal_met": bool(value >= goal if higher else value <= goal),
            "goal": f"{'>=' if higher else '<='} {goal}",
            "iteration": best.get("iteration"),
            "parameters": best.get("parameters"),
            "seconds": time.perf_counter() - t1,
            "segmentation": str(out),
            "run_dir": str(run_dir.path),
        }
        echo(f"  applied (iteration {best.get('iteration')}) -> {out}  "
             f"({time.perf_counter() - t1:.1f} s for this run)")
    total = time.perf_counter() - t0
    echo("\n== demo summary (applied segmentation of the validation volume vs its GT)")
    for name, r in results.items():
        echo(f"  {name:16s} {r['criterion']:10s} {r['value']:.4f} (goal {r['goal']}: "
             f"{'met' if r['goal_met'] else 'NOT met'}), {r['seconds']:.0f} s; plots in "
             f"{r['run_dir']}/plots")
    echo(f"  wall time {total:.1f} s (goal <= {TIME_GOAL_S} s: "
         f"{'met' if total <= TIME_GOAL_S else 'NOT met'})")
    for r in (r for r in results.values() if isinstance(r, dict)):
        echo(f"  look at it: dacapo view {r['run_dir']}   (or: dacapo view "
             f"{container / 'validate' / 'raw'} {r['segmentation']})")
    results["_total_seconds"] = total
    results["_goals_met"] = bool(all(r["goal_met"] for r in results.values()
                                     if isinstance(r, dict)) and total <= TIME_GOAL_S)
    return results
