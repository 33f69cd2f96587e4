"""Validation: predict each validation dataset, post-process every parameter, score.

For checkpoint ``iteration`` and each validation dataset:

1. blockwise prediction into ``predictions/<iteration>/<dataset>.zarr/prediction`` (in this
   process when ``num_workers`` is 0 or the live training model is passed in, else on
   daisy workers);
2. for every parameter of the task's sweep, ``post_processor.process`` into
   ``.../segmentation_<parameter id>``: in memory when the prediction has at most
   ``IN_MEMORY_VOXELS`` values (the evaluation holds the volume in memory anyway), else
   blockwise with ``num_workers`` workers;
3. ``evaluator.evaluate(segmentation, gt)`` on the prediction ROI ∩ the GT ROI: the whole
   GT with the run's default ``padding="reflect"`` (context beyond the raw mirrored), only
   the part a valid UNet sees real context for with ``padding="none"`` (a warning says how
   much of the GT that is); the scored ROI and its fraction of the GT are in every row;
4. one row per criterion in ``validation_scores.csv`` (rows of an earlier validation of
   the same iteration are replaced); a (near-)constant segmentation where the GT is not
   (`dacapo.runs.scores.is_degenerate`) is flagged there and never chosen as best; one
   warning line per validation names them (`dacapo.runs.scores.warn_degenerate`).

Plots are left to the callers (end of training, ``dacapo validate``): drawing them after
every validation would cost more than the validation of a small volume.

Then ``best.json`` is rewritten from every stored row (`dacapo.runs.scores.update_best`).
``num_workers`` 0 means in this process, for prediction and post-processing alike.
Daisy logs go to ``logs/validate/<iteration>/<dataset>/``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from funlib.persistence import Array

from dacapo.experiments.tasks.evaluators import evaluate_blockwise
from dacapo.io.arrays import in_memory, open_array, read_array
from dacapo.pipeline.predict import predict
from dacapo.runs.log_file import log_to_file
from dacapo.runs.run_dir import as_run_dir
from dacapo.runs.scores import is_degenerate, parameters_dict, update_best, warn_degenerate

logger = logging.getLogger(__name__)

#: predictions with at most this many values are post-processed in memory
IN_MEMORY_VOXELS = 2**25


def _crop_array(array: Array, roi) -> Array:
    data = read_array(array, roi)
    return Array(in_memory(data), offset=roi.offset, voxel_size=array.voxel_size,
                 axis_names=array.axis_names, units=array.units)


def set_prediction(post_processor, prediction: Array, path: str | Path,
                   limit: int = IN_MEMORY_VOXELS) -> None:
    """Hand ``prediction`` (stored at ``path``) to ``post_processor``: in memory when it has
    at most ``limit`` values (one block, no worker start-up), else as the zarr path
    (blockwise)."""
    if int(np.prod(prediction.shape)) <= limit:
        post_processor.set_prediction(_crop_array(prediction, prediction.roi))
    else:
        post_processor.set_prediction(str(path))


def validate_run(
    run_dir,
    iteration: int | None = None,
    num_workers: int | None = None,
    progress: bool = True,
    run_config=None,
    model=None,
    evaluate_in_memory: int = IN_MEMORY_VOXELS,
) -> list[dict[str, Any]]:
    """Validate checkpoint ``iteration`` (default: the latest); returns its score rows.

    ``model`` (the training loop's, holding the weights of ``iteration``) predicts in this
    process without reading the checkpoint. A scored ROI of more than
    ``evaluate_in_memory`` GT voxels is evaluated blockwise
    (`dacapo.experiments.tasks.evaluators.evaluate_blockwise`: exact, memory bounded).
    """
    run_dir = as_run_dir(run_dir)
    rc = run_config or run_dir.load_config()
    if not rc.datasplit_config.validate:
        raise ValueError(f"run {rc.name!r}: datasplit_config.validate lists no dataset")
    if iteration is None:
        iteration = run_dir.latest_checkpoint()
        if iteration is None:
            raise FileNotFoundError(f"run {str(run_dir.path)!r}: no checkpoint to validate")
    checkpoint = run_dir.existing_checkpoint(iteration)
    num_workers = rc.num_workers if num_workers is None else num_workers
    if num_workers < 0:
        raise ValueError(f"num_workers: must be >= 0, got {num_workers}")
    task = rc.task_config.build()
    rows: list[dict[str, Any]] = []
    run_dir.logs.mkdir(parents=True, exist_ok=True)
    with log_to_file(run_dir.logs / "validate.log"):
        for dconf in rc.datasplit_config.validate:
            ds = dconf.open()
            out = run_dir.predictions / f"{iteration:08d}" / f"{ds.name}.zarr"
            log_dir = run_dir.logs / "validate" / f"{iteration:08d}" / ds.name
            for stale in (out, log_dir):
                if stale.exists():
                    shutil.rmtree(stale)
            logger.info("validating %s at iteration %d on %s", rc.name, iteration, ds.name)
            prediction = predict(
                rc, checkpoint, dconf.raw, out / "prediction", roi=ds.gt.roi,
                padding=rc.padding, num_workers=num_workers, log_dir=log_dir,
                progress=progress, model=model,
                # the training loop (which passes its model) scanned every raw at its start
                check_raw=model is None,
            )
            roi = prediction.roi.intersect(ds.gt.roi)
            if roi.empty:
                raise ValueError(
                    f"dataset {ds.name!r}: the prediction ROI {prediction.roi} does not overlap "
                    f"the gt ROI {ds.gt.roi}"
                )
            # a GT beyond the in-memory limit is scored block by block (exact, bounded memory)
            in_memory = int(np.prod(roi.shape / ds.gt.voxel_size)) <= evaluate_in_memory
            gt = _crop_array(ds.gt, roi) if in_memory else None
            fraction = roi.size / ds.gt.roi.size
            if fraction < 1:
                logger.warning("dataset %s: scored %s, %.1f%% of the gt ROI %s (padding %r)",
                               ds.name, roi, 100 * fraction, ds.gt.roi, rc.padding)
            set_prediction(task.post_processor, prediction, out / "prediction")
            for parameters in task.parameters:
                seg_path = out / f"segmentation_{parameters.id}"
                task.post_processor.process(
                    parameters, str(seg_path), num_workers=num_workers, block_size=None,
                    log_dir=log_dir,
                )
                p = parameters_dict(parameters)
                if in_memory:
                    seg = _crop_array(open_array(seg_path, "segmentation"), roi)
                    scores = task.evaluator.evaluate(seg, gt)
                    degenerate = is_degenerate(seg, gt)
                else:
                    scores = evaluate_blockwise(
                        task.evaluator, seg_path, dconf.gt, roi=roi,
                        num_workers=max(1, num_workers), log_dir=log_dir / "evaluate",
                        task_id=f"evaluate_{parameters.id}")
                    degenerate = False  # not checked blockwise (it needs the whole volume)
                for criterion in scores.criteria:
                    rows.append({
                        "iteration": iteration, "dataset": ds.name, "parameters": p,
                        "criterion": criterion, "value": float(scores[criterion]),
                        "scored_roi": str(roi), "gt_fraction": fraction,
                        "degenerate": int(degenerate),
                    })
        warn_degenerate(rows)
    run_dir.replace_validation_scores(iteration, rows)
    update_best(run_dir, task)
    return rows
