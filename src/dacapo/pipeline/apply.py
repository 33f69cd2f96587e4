"""Apply a trained run to a volume of any size: blockwise prediction + post-processing.

The checkpoint and parameters: `dacapo.runs.class_parameters.output_checkpoint_and_parameters`
(the best of the task's main criterion unless an iteration or criterion is given). The prediction
goes to ``<output>_prediction`` beside the output array (so a killed apply re-run skips
the finished prediction blocks), daisy logs to ``<run>/logs/apply/<output name>/<iteration>/``.
The options (`dacapo.pipeline.predict_options.PredictOptions`: workers — 0 = in this process,
N ≥ 1 = N local worker processes or N jobs of the worker command, None = the run's
``num_workers`` —, worker command, padding, engine, precision, progress) hold for the
prediction and the post-processing alike; apply sets their ``log_dir``. A prediction with
at most ``in_memory_limit`` values (default `dacapo.pipeline.in_memory.IN_MEMORY_VOXELS`)
is post-processed in memory in one block, as in validation (same result as on the
validation volume, no worker start-up); a bigger one blockwise, with the same workers.
An existing output is only resumed beside its ``<output>_prediction`` (else refused before
anything is written); an input unlike the training raw (voxel size, intensity spread) is
named in a warning (`dacapo.pipeline.input_match`). A task with per-class post-processing (``instance_classes``) gets each class's own best
setting, by default at the checkpoint where these joined settings score best
(`dacapo.runs.class_parameters`), and writes one OME-NGFF label image per class,
``<output>/<class>``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import attr
from funlib.persistence import Array

from dacapo.io.array_checks import check_finite_array
from dacapo.io.arrays import open_array
from dacapo.io.collection import collection_images
from dacapo.io.paths import check_output
from dacapo.pipeline.in_memory import IN_MEMORY_VOXELS, set_prediction
from dacapo.pipeline.input_match import input_warnings
from dacapo.pipeline.predict import predict
from dacapo.pipeline.predict_options import PredictOptions
from dacapo.runs.class_parameters import output_checkpoint_and_parameters
from dacapo.runs.log_file import log_to_file
from dacapo.runs.run_dir import RunDir
from dacapo.runs.scores import parameters_dict, parameters_label

logger = logging.getLogger(__name__)


def apply_run(
    run_dir: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    options: PredictOptions | None = None,
    *,
    iteration: int | None = None,
    criterion: str | None = None,
    in_memory_limit: int | None = None,
) -> Array:
    """Predict and post-process ``input_path`` into ``output_path``; returns the output.

    ``options`` (`PredictOptions`; None fields: the run's; module docstring): with
    ``reflect`` or ``zero`` padding every voxel of the input is segmented
    (`dacapo.pipeline.predict`)."""
    output_path = Path(output_path)
    prediction_path = output_path.with_name(output_path.name + "_prediction")
    check_output(output_path, {"input": input_path})
    check_output(prediction_path, {"input": input_path}, name="the prediction path")
    if output_path.exists() and not prediction_path.exists():
        raise ValueError(
            f"output {str(output_path)!r} exists and is no apply output to resume (no "
            f"{prediction_path.name!r} beside it): delete it or choose another output path")
    run_dir = RunDir(run_dir)
    rc = run_dir.load_config()
    options = (options or PredictOptions()).for_run(rc)
    options.check()
    task = rc.task_config.build()
    iteration, parameters = output_checkpoint_and_parameters(run_dir, task, iteration, criterion)
    per_class = hasattr(task.post_processor, "process_classes")
    checkpoint = run_dir.existing_checkpoint(iteration)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(output_path.absolute()).strip("/"))[-120:]
    options = attr.evolve(options, log_dir=run_dir.logs / "apply" / name / f"{iteration:08d}",
                          task_id=None)
    # the input's errors (missing, unreadable, NaN/Inf) come before the notice below
    raw = open_array(str(input_path), "raw")
    check_finite_array(raw, f"raw {str(input_path)!r}")
    with log_to_file(run_dir.logs / "apply.log"):
        # a notice: ``dacapo apply`` shows it at default verbosity (dacapo.cli.log_setup)
        logger.info("applying %s to %s: checkpoint %s (iteration %d), parameters %s", rc.name,
                    input_path, checkpoint, iteration,
                    parameters_label(parameters_dict(parameters)), extra={"notice": True})
        for line in input_warnings(rc, raw, f"input {str(input_path)!r}"):
            logger.warning(line)
        prediction = predict(rc, checkpoint, input_path, prediction_path, options,
                             check_raw=False)
        post = task.post_processor
        limit = IN_MEMORY_VOXELS if in_memory_limit is None else in_memory_limit
        set_prediction(post, prediction, prediction_path, limit)
        if per_class:  # one label image per class, <output>/<class>; returns the first
            outputs = post.process_classes(parameters, str(output_path), options)
            return next(iter(outputs.values()))
        return post.process(parameters, str(output_path), options, block_size=None)


def apply_collection(run_dir: str | Path, container: str | Path, output: str | Path,
                     options: PredictOptions | None = None, *, iteration: int | None = None,
                     criterion: str | None = None) -> dict[str, Array]:
    """`apply_run` on every image of the collection ``container``
    (`dacapo.io.collection`), each into ``output/<image>`` (with
    ``output/<image>_prediction``); one image at a time, so a network never sees two.
    Returns the outputs by image name."""
    outputs = {}
    for image in collection_images(container):
        outputs[image.name] = apply_run(run_dir, image.raw, Path(output) / image.name, options,
                                        iteration=iteration, criterion=criterion)
    return outputs
