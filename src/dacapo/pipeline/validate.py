"""Validation: predict each validation dataset, post-process every parameter, score.

For checkpoint ``iteration`` and each validation dataset:

1. blockwise prediction into ``predictions/<iteration>/<dataset>.zarr/prediction``
   (`dacapo.pipeline.predict`: in this process with 0 workers — with the live training
   model when it is passed in — else on daisy workers);
2. for every parameter of the task's sweep, ``post_processor.process`` into
   ``.../segmentation_<parameter id>``: in memory when the prediction has at most
   ``IN_MEMORY_VOXELS`` values (the evaluation holds the volume in memory anyway), else
   blockwise with the same workers;
3. ``evaluator.evaluate(segmentation, gt)`` on the prediction ROI ∩ the GT ROI: the whole
   GT with the run's default ``padding="reflect"`` (context beyond the raw mirrored), only
   the part a valid UNet sees real context for with ``padding="none"`` (a warning says how
   much of the GT that is); the scored ROI and its fraction of the GT are in every row;
4. one row per criterion in ``validation_scores.csv`` (rows of an earlier validation of
   the same iteration are replaced); a (near-)constant segmentation where the GT is not
   (`dacapo.runs.scores.is_degenerate`) is flagged there and never chosen as best; one
   warning line per validation names them (`dacapo.runs.scores.warn_degenerate`).

Each validated dataset gets its picture, ``plots/validation_<iteration>_<dataset>.png``
(`dacapo.runs.validation_plot`: one section read, about a second), at the parameters
the main criterion chooses on the mean over the datasets; the run's other plots
are left to the callers (end of training, ``dacapo validate``).

Then ``best.json`` is rewritten from every stored row (`dacapo.runs.scores.update_best`:
each criterion's best iteration and parameters by the mean over the validation datasets)
and the validation goes to TensorBoard (`dacapo.runs.tensorboard_log.log_validation`).
The options (`dacapo.pipeline.predict_options.PredictOptions`: workers, engine, precision,
progress; None: the run's) hold for prediction, post-processing and evaluation alike.
Daisy logs go to ``logs/validate/<iteration>/<dataset>/``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import attr
import numpy as np
from funlib.persistence import Array

from dacapo.experiments.tasks.evaluators import evaluate_blockwise
from dacapo.io.arrays import open_array
from dacapo.pipeline.in_memory import IN_MEMORY_VOXELS, crop_array, set_prediction
from dacapo.pipeline.predict import predict
from dacapo.pipeline.predict_options import PredictOptions
from dacapo.runs.log_file import log_to_file
from dacapo.runs.run_dir import RunDir, as_run_dir
from dacapo.runs.scores import (
    choose_parameters,
    is_degenerate,
    main_criterion,
    parameters_dict,
    update_best,
    warn_degenerate,
)
from dacapo.runs.tensorboard_log import log_validation
from dacapo.runs.validation_plot import safe_plot_validation

logger = logging.getLogger(__name__)


def _score(task, seg_path: Path, dataset: str, gt_path, roi, gt: Array | None,
           log_dir: Path, options: PredictOptions, parameters) -> tuple[Any, bool]:
    """(scores, degenerate) of one segmentation on ``roi``: in memory when the ``gt`` is
    given, else block by block (exact, bounded memory; degeneracy not checked: it needs
    the whole volume)."""
    if gt is None:
        scores = evaluate_blockwise(
            task.evaluator, seg_path, gt_path, roi=roi,
            options=attr.evolve(options, log_dir=log_dir / "evaluate",
                                task_id=f"evaluate_{parameters.id}"))
        return scores, False
    seg = crop_array(open_array(seg_path, "segmentation"), roi)
    scores = task.evaluator.evaluate(seg, gt)
    return scores, is_degenerate(seg, gt)


def _validate_dataset(rc, task, dconf, ds, run_dir: RunDir, iteration: int, checkpoint: Path,
                      options: PredictOptions, model, evaluate_in_memory: int
                      ) -> tuple[list[dict], dict]:
    """Predict, post-process and score one validation dataset; (its score rows, the
    arguments of its picture); ``ds`` is ``dconf`` opened."""
    out = run_dir.predictions / f"{iteration:08d}" / f"{ds.name}.zarr"
    log_dir = run_dir.logs / "validate" / f"{iteration:08d}" / ds.name
    for stale in (out, log_dir):
        if stale.exists():
            shutil.rmtree(stale)
    logger.info("validating %s at iteration %d on %s", rc.name, iteration, ds.name)
    options = attr.evolve(options, log_dir=log_dir, task_id=None)
    prediction = predict(rc, checkpoint, dconf.raw, out / "prediction", options, roi=ds.gt.roi,
                         model=model,
                         # the training loop (which passes its model) scanned every raw at its start
                         check_raw=model is None)
    roi = prediction.roi.intersect(ds.gt.roi)
    if roi.empty:
        raise ValueError(
            f"dataset {ds.name!r}: the prediction ROI {prediction.roi} does not overlap "
            f"the gt ROI {ds.gt.roi}"
        )
    # a GT beyond the in-memory limit is scored block by block (exact, bounded memory)
    in_memory = int(np.prod(roi.shape / ds.gt.voxel_size)) <= evaluate_in_memory
    gt = crop_array(ds.gt, roi) if in_memory else None
    fraction = roi.size / ds.gt.roi.size
    if fraction < 1:
        logger.warning("dataset %s: scored %s, %.1f%% of the gt ROI %s (padding %r)",
                       ds.name, roi, 100 * fraction, ds.gt.roi, options.padding)
    set_prediction(task.post_processor, prediction, out / "prediction")
    rows = []
    for parameters in task.parameters:
        seg_path = out / f"segmentation_{parameters.id}"
        task.post_processor.process(parameters, str(seg_path), options, block_size=None)
        scores, degenerate = _score(task, seg_path, ds.name, dconf.gt, roi, gt, log_dir,
                                    options, parameters)
        rows += [{
            "iteration": iteration, "dataset": ds.name,
            "parameters": parameters_dict(parameters), "criterion": criterion,
            "value": float(scores[criterion]), "scored_roi": str(roi), "gt_fraction": fraction,
            "degenerate": int(degenerate),
        } for criterion in scores.criteria]
    return rows, {"dataset": ds, "prediction": prediction, "folder": out, "roi": roi}


def validate_run(
    run_dir,
    iteration: int | None = None,
    options: PredictOptions | None = None,
    *,
    run_config=None,
    model=None,
    evaluate_in_memory: int = IN_MEMORY_VOXELS,
) -> list[dict[str, Any]]:
    """Validate checkpoint ``iteration`` (default: the latest); returns its score rows.

    ``options`` (`PredictOptions`; None fields: the run's) hold for the prediction, the
    post-processing and the blockwise evaluation; validation sets their ``log_dir``.
    ``model`` (the training loop's, holding the weights of ``iteration``) predicts in this
    process without reading the checkpoint (with 0 workers). A scored ROI of more than
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
    options = (options or PredictOptions()).for_run(rc)
    task = rc.task_config.build()
    rows: list[dict[str, Any]] = []
    run_dir.logs.mkdir(parents=True, exist_ok=True)
    with log_to_file(run_dir.logs / "validate.log"):
        pictures = []
        # every dataset opened (and checked) before the first is predicted
        opened = [(dconf, dconf.open()) for dconf in rc.datasplit_config.validate]
        for dconf, ds in opened:
            here, picture = _validate_dataset(rc, task, dconf, ds, run_dir, iteration,
                                              checkpoint, options, model, evaluate_in_memory)
            rows += here
            pictures.append(picture)
        warn_degenerate(rows)
        main = main_criterion(task)
        chosen = choose_parameters(rows, main, task.evaluation_scores.higher_is_better(main))
        chosen = None if chosen is None else chosen["parameters"]
        for p in pictures:  # each at the parameters chosen on all the datasets
            here = [r for r in rows if r["dataset"] == p["dataset"].name]
            safe_plot_validation(run_dir, task, iteration=iteration, rows=here, chosen=chosen,
                                 **p)
    run_dir.replace_validation_scores(iteration, rows)
    update_best(run_dir, task)
    log_validation(run_dir, iteration, rows, rc, task)  # tensorboard/validation
    return rows
