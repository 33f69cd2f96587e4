"""Apply a trained run to a volume of any size: blockwise prediction + post-processing.

The checkpoint and parameters: `dacapo.runs.scores.choose_checkpoint_and_parameters` (the best
of the task's main criterion unless an iteration or criterion is given). The prediction
goes to ``<output>_prediction`` beside the output array (so a killed apply re-run skips
the finished prediction blocks), daisy logs to ``<run>/logs/apply/<output name>/<iteration>/``.
``num_workers``: 0 = in this process, None = one per core, except that a prediction of at
most ``in_memory_limit`` values is then made in this process (a small volume: no worker
start-up, which would cost more than the prediction). ``worker_command`` (e.g.
``"srun -n1 {command}"``) starts the prediction workers through a scheduler; the
post-processor gets it too when its ``process`` accepts a ``worker_command`` argument.
A prediction with at most ``in_memory_limit`` values (default
`dacapo.pipeline.validate.IN_MEMORY_VOXELS`) is post-processed in memory in one block, as in
validation (same result as on the validation volume, no worker start-up); a bigger one
blockwise.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
from pathlib import Path

from funlib.persistence import Array

from dacapo.io.paths import check_output
from dacapo.pipeline.predict import predict, prediction_values
from dacapo.pipeline.validate import IN_MEMORY_VOXELS, set_prediction
from dacapo.runs.log_file import log_to_file
from dacapo.runs.run_dir import RunDir
from dacapo.runs.scores import choose_checkpoint_and_parameters

logger = logging.getLogger(__name__)


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
    padding: str | None = None,
    engine: str = "auto",
    precision: str = "fp32",
) -> Array:
    """Predict and post-process ``input_path`` into ``output_path``; returns the output.

    ``padding`` (default: the run's) fills the context beyond the raw; with ``reflect`` or
    ``zero`` every voxel of the input is segmented (`dacapo.pipeline.predict`); ``engine`` and
    ``precision`` of the forward pass: `dacapo.pipeline.engines`."""
    output_path = Path(output_path)
    prediction_path = output_path.with_name(output_path.name + "_prediction")
    check_output(output_path, {"input": input_path})
    check_output(prediction_path, {"input": input_path}, name="the prediction path")
    if num_workers is not None and num_workers < 0:
        raise ValueError(f"--workers: must be >= 0, got {num_workers}")
    run_dir = RunDir(run_dir)
    rc = run_dir.load_config()
    task = rc.task_config.build()
    iteration, parameters = choose_checkpoint_and_parameters(run_dir, task, iteration, criterion)
    checkpoint = run_dir.existing_checkpoint(iteration)
    limit = IN_MEMORY_VOXELS if in_memory_limit is None else in_memory_limit
    predict_workers = num_workers
    if num_workers is None:
        num_workers = os.cpu_count() or 1
        values = prediction_values(rc, input_path)
        predict_workers = 0 if values <= limit else num_workers
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(output_path.absolute()).strip("/"))[-120:]
    log_dir = run_dir.logs / "apply" / name / f"{iteration:08d}"
    logger.info("applying %s (iteration %d, %s) to %s", rc.name, iteration, parameters, input_path)
    with log_to_file(run_dir.logs / "apply.log"):
        prediction = predict(
            rc, checkpoint, input_path, prediction_path, padding=padding or rc.padding,
            num_workers=predict_workers, engine=engine, precision=precision,
            worker_command=worker_command, log_dir=log_dir, task_id="predict", progress=progress,
        )
        post = task.post_processor
        set_prediction(post, prediction, prediction_path, limit)
        kwargs = {}
        if worker_command is not None and "worker_command" in inspect.signature(post.process).parameters:
            kwargs["worker_command"] = worker_command
        return post.process(
            parameters, str(output_path), num_workers=num_workers, block_size=None,
            log_dir=log_dir, **kwargs,
        )
