"""Apply a trained run to a volume of any size: blockwise prediction + post-processing.

Checkpoint: ``iteration`` if given; else the best iteration of ``criterion`` (default: the
task's main criterion, see `dacapo.validate.main_criterion`) from ``best.json``; else the
latest checkpoint. Parameters: the best parameters of that criterion (at that iteration
when an iteration is given, from ``validation_scores.csv``); with no validation scores,
the first parameters of the sweep (logged as a warning).

The prediction goes to ``<output>_prediction`` beside the output array (so a killed apply
re-run skips the finished prediction blocks), daisy logs to
``<run>/logs/apply/<output name>/<iteration>/``. ``worker_command`` (e.g.
``"srun -n1 {command}"``) starts the prediction workers through a scheduler; the
post-processor gets it too when its ``process`` accepts a ``worker_command`` argument.
A prediction with at most ``in_memory_limit`` values (default
`dacapo.validate.IN_MEMORY_VOXELS`) is post-processed in memory in one block, as in
validation (same result as on the validation volume, no worker start-up); a bigger one
blockwise with ``num_workers`` workers.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import re
from pathlib import Path

from funlib.persistence import Array

from dacapo.checks import check_not_input_array, check_output_location
from dacapo.store.run_dir import RunDir
from dacapo.validate import IN_MEMORY_VOXELS, main_criterion, parameters_dict, set_prediction

logger = logging.getLogger(__name__)


def choose_checkpoint_and_parameters(run_dir: RunDir, task, iteration: int | None,
                                     criterion: str | None):
    """(iteration, parameters object) to apply; see the module docstring."""
    criteria = task.evaluation_scores.criteria
    if criterion is not None and criterion not in criteria:
        raise ValueError(f"criterion {criterion!r} is not one of this task's: {criteria}")
    crit = criterion or main_criterion(task)
    best = run_dir.load_best()
    params_dict = None
    if iteration is None:
        if crit in best:
            iteration = int(best[crit]["iteration"])
            params_dict = best[crit]["parameters"]
        elif criterion is not None:
            raise ValueError(f"no best score stored for criterion {criterion!r}; run validate first")
        else:
            iteration = run_dir.latest_checkpoint()
            if iteration is None:
                raise FileNotFoundError(f"run {str(run_dir.path)!r}: no checkpoint yet")
    if params_dict is None:
        rows = [r for r in run_dir.validation_scores()
                if r["iteration"] == iteration and r["criterion"] == crit and not math.isnan(r["value"])]
        if rows:
            hib = task.evaluation_scores.higher_is_better(crit)
            params_dict = (max if hib else min)(rows, key=lambda r: r["value"])["parameters"]
    sweep = task.parameters
    if params_dict is not None:
        wanted = json.dumps(params_dict, sort_keys=True)
        for p in sweep:
            if json.dumps(parameters_dict(p), sort_keys=True) == wanted:
                return iteration, p
        logger.warning("stored parameters %s are not in the task's sweep; using the first", params_dict)
    else:
        logger.warning("no validation scores for iteration %s; using the first parameters", iteration)
    return iteration, sweep[0]


def apply_run(
    run_dir: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    iteration: int | None = None,
    criterion: str | None = None,
    num_workers: int | None = None,
    worker_command: str | None = None,
    progress: bool = True,
    in_memory_limit: int | None = None,
) -> Array:
    """Predict and post-process ``input_path`` into ``output_path``; returns the output."""
    import os

    from dacapo.predict import predict
    from dacapo.train import log_to_file

    check_not_input_array(output_path, input_path)
    check_output_location(output_path)
    run_dir = RunDir(run_dir)
    rc = run_dir.load_config()
    task = rc.task_config.build()
    iteration, parameters = choose_checkpoint_and_parameters(run_dir, task, iteration, criterion)
    if not run_dir.checkpoint_path(iteration).is_file():
        raise FileNotFoundError(
            f"run {str(run_dir.path)!r}: no checkpoint for iteration {iteration} "
            f"(available: {run_dir.checkpoint_iterations()[-10:]})"
        )
    num_workers = num_workers or os.cpu_count() or 1
    output_path = Path(output_path)
    prediction_path = output_path.with_name(output_path.name + "_prediction")
    check_not_input_array(prediction_path, input_path, "the prediction path")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(output_path.absolute()).strip("/"))[-120:]
    log_dir = run_dir.logs / "apply" / name / f"{iteration:08d}"
    logger.info("applying %s (iteration %d, %s) to %s", rc.name, iteration, parameters, input_path)
    with log_to_file(run_dir.logs / "apply.log"):
        prediction = predict(
            rc, run_dir.checkpoint_path(iteration), input_path, prediction_path,
            num_workers=num_workers, worker_command=worker_command, log_dir=log_dir,
            task_id="predict", progress=progress,
        )
        post = task.post_processor
        set_prediction(post, prediction, prediction_path,
                       IN_MEMORY_VOXELS if in_memory_limit is None else in_memory_limit)
        kwargs = {}
        if worker_command is not None and "worker_command" in inspect.signature(post.process).parameters:
            kwargs["worker_command"] = worker_command
        return post.process(
            parameters, str(output_path), num_workers=num_workers, block_size=None,
            log_dir=log_dir, **kwargs,
        )
