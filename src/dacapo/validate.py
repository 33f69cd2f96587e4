"""Validation: predict each validation dataset, post-process every parameter, score.

For checkpoint ``iteration`` and each validation dataset:

1. blockwise prediction into ``predictions/<iteration>/<dataset>.zarr/prediction`` (in this
   process when ``num_workers`` is 0 or the live training model is passed in, else on
   daisy workers);
2. for every parameter of the task's sweep, ``post_processor.process`` into
   ``.../segmentation_<parameter id>``: in memory when the prediction has at most
   ``IN_MEMORY_VOXELS`` values (the evaluation holds the volume in memory anyway), else
   blockwise with ``max(1, num_workers)`` workers;
3. ``evaluator.evaluate(segmentation, gt)`` on the prediction ROI ∩ the GT ROI (a valid
   UNet's prediction is smaller than the raw; both arrays are cropped to it);
4. one row per criterion in ``validation_scores.csv`` (rows of an earlier validation of
   the same iteration are replaced).

Plots are left to the callers (end of training, ``dacapo validate``): drawing them after
every validation would cost more than the validation of a small volume.

Then every stored row is replayed through ``evaluator.store_score`` and ``best.json``
is rewritten: per criterion (where the score class says ``store_best``) the best
dataset, iteration, parameters (as a dict) and value over all validations so far.
Daisy logs go to ``logs/validate/<iteration>/<dataset>/``.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from funlib.persistence import Array

from dacapo.store.run_dir import RunDir

logger = logging.getLogger(__name__)

#: predictions with at most this many values are post-processed in memory
IN_MEMORY_VOXELS = 2**25

#: criteria shown in score tables, in this order (all are in the CSV): a name matches
#: itself, ``__<metric>`` matches that metric of every channel
MAIN_METRICS = [
    "voi", "voi_split", "voi_merge", "adapted_rand_error", "ap50", "map", "f1",
    "mean_dice", "mean_iou",
    "__dice", "__jaccard", "__hausdorff", "__f1_score", "__precision", "__recall", "__voi",
    "__iou", "frizz_level", "blipp_score",
]


def parameters_dict(parameters) -> dict[str, Any]:
    """Parameters as a plain dict (``type`` + fields)."""
    if hasattr(parameters, "to_dict"):
        return parameters.to_dict()
    return {"value": str(parameters)}


def parameters_label(p: dict[str, Any]) -> str:
    """``threshold=0.5`` style text of a parameters dict."""
    items = [f"{k}={v}" for k, v in p.items() if k not in ("type", "id")]
    return ", ".join(items) or f"id={p.get('id')}"


def main_criteria(criteria: list[str], limit: int = 10) -> list[str]:
    """The criteria a score table shows: by ``MAIN_METRICS`` order, at most ``limit``."""
    chosen = []
    for metric in MAIN_METRICS:
        for c in criteria:
            hit = c.endswith(metric) if metric.startswith("__") else c == metric
            if hit and c not in chosen:
                chosen.append(c)
    return chosen[:limit] or criteria[:limit]


def main_criterion(task) -> str:
    """The criterion `apply` uses by default (first of `main_criteria`)."""
    scores = task.evaluation_scores
    stored = [c for c in scores.criteria if scores.store_best(c)]
    return main_criteria(stored or scores.criteria, 1)[0]


def _as_run_dir(run_dir) -> RunDir:
    return run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)


def _crop_array(array: Array, roi) -> Array:
    data = np.asarray(array.to_ndarray(roi, fill_value=0))
    return Array(data, offset=roi.offset, voxel_size=array.voxel_size,
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
) -> list[dict[str, Any]]:
    """Validate checkpoint ``iteration`` (default: the latest); returns its score rows.

    ``model`` (the training loop's, holding the weights of ``iteration``) predicts in this
    process without reading the checkpoint.
    """
    from dacapo.experiments.datasplits import open_array
    from dacapo.predict import predict
    from dacapo.train import log_to_file

    run_dir = _as_run_dir(run_dir)
    rc = run_config or run_dir.load_config()
    if not rc.datasplit_config.validate:
        raise ValueError(f"run {rc.name!r}: datasplit_config.validate lists no dataset")
    if iteration is None:
        iteration = run_dir.latest_checkpoint()
        if iteration is None:
            raise FileNotFoundError(f"run {str(run_dir.path)!r}: no checkpoint to validate")
    checkpoint = run_dir.checkpoint_path(iteration)
    if not checkpoint.is_file():
        raise FileNotFoundError(
            f"run {str(run_dir.path)!r}: no checkpoint for iteration {iteration} "
            f"(available: {run_dir.checkpoint_iterations()[-10:]})"
        )
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
                rc, checkpoint, dconf.raw, out / "prediction", num_workers=num_workers,
                log_dir=log_dir, progress=progress, model=model,
                # the training loop (which passes its model) scanned every raw at its start
                check_raw=model is None,
            )
            roi = prediction.roi.intersect(ds.gt.roi)
            if roi.empty:
                raise ValueError(
                    f"dataset {ds.name!r}: the prediction ROI {prediction.roi} does not overlap "
                    f"the gt ROI {ds.gt.roi}"
                )
            gt = _crop_array(ds.gt, roi)
            set_prediction(task.post_processor, prediction, out / "prediction")
            for parameters in task.parameters:
                seg_path = out / f"segmentation_{parameters.id}"
                task.post_processor.process(
                    parameters, str(seg_path), num_workers=max(1, num_workers), block_size=None,
                    log_dir=log_dir,
                )
                seg = _crop_array(open_array(seg_path, "segmentation"), roi)
                scores = task.evaluator.evaluate(seg, gt)
                p = parameters_dict(parameters)
                for criterion in scores.criteria:
                    rows.append({
                        "iteration": iteration, "dataset": ds.name, "parameters": p,
                        "criterion": criterion, "value": float(scores[criterion]),
                    })
    run_dir.replace_validation_scores(iteration, rows)
    update_best(run_dir, task)
    return rows


def update_best(run_dir, task) -> dict[str, Any]:
    """Replay all stored scores through the task's evaluator; rewrite ``best.json``."""
    run_dir = _as_run_dir(run_dir)
    evaluator = task.evaluator
    evaluator.best_scores = {}
    empty = task.evaluation_scores
    by_key = {json.dumps(parameters_dict(p), sort_keys=True): p for p in task.parameters}
    groups: dict[tuple, dict[str, float]] = {}
    for row in run_dir.validation_scores():
        key = (row["iteration"], row["dataset"], json.dumps(row["parameters"], sort_keys=True))
        groups.setdefault(key, {})[row["criterion"]] = row["value"]
    for (iteration, dataset, pkey), values in sorted(groups.items()):
        values = {k: v for k, v in values.items() if k in empty.criteria}
        scores = type(empty)(values, channels=empty.channels)
        evaluator.store_score(iteration, dataset, by_key.get(pkey, pkey), scores)
    best: dict[str, Any] = {}
    for criterion in empty.criteria:
        if not empty.store_best(criterion):
            continue
        result = evaluator.best(criterion)
        if result is None:
            continue
        params = result.parameters
        best[criterion] = {
            "iteration": int(result.iteration),
            "dataset": result.dataset,
            "parameters": json.loads(params) if isinstance(params, str) else parameters_dict(params),
            "value": float(result.value),
            "higher_is_better": bool(empty.higher_is_better(criterion)),
        }
    run_dir.save_best(best)
    return best


def load_best(run_dir) -> dict[str, Any]:
    return _as_run_dir(run_dir).load_best()


def _fmt(value: float) -> str:
    """4 decimals; no "-0.0000" for a value that rounds to zero."""
    return f"{0.0 if abs(value) < 5e-5 else value:.4f}"


def format_table(run_dir, iteration: int | None = None, limit: int = 10) -> str:
    """One-screen score table: main criteria at ``iteration`` (default: the last
    validated) per dataset, best over the sweep, and the best so far from ``best.json``."""
    run_dir = _as_run_dir(run_dir)
    rows = run_dir.validation_scores()
    if not rows:
        return f"run {run_dir.path.name}: no validation scores yet"
    if iteration is None:
        iteration = max(r["iteration"] for r in rows)
    rows = [r for r in rows if r["iteration"] == iteration]
    best = run_dir.load_best()
    criteria = list(dict.fromkeys(r["criterion"] for r in rows))
    shown = main_criteria(criteria, limit)
    lines = [f"run {run_dir.path.name}: validation at iteration {iteration}"]
    header = f"  {'dataset':12s} {'criterion':28s} {'value':>9s}  {'parameters':28s} {'best (iteration)':>18s}"
    lines.append(header)
    lines.append("  " + "-" * (len(header) - 2))
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for c in shown:
            cands = [r for r in rows if r["dataset"] == dataset and r["criterion"] == c]
            finite = [r for r in cands if not math.isnan(r["value"])]
            b = best.get(c)
            hib = b["higher_is_better"] if b else True
            if finite:
                top = (max if hib else min)(finite, key=lambda r: r["value"])
                value, params = _fmt(top["value"]), parameters_label(top["parameters"])
            else:
                value, params = "nan", "-"
            best_text = f"{_fmt(b['value'])} ({b['iteration']})" if b else "-"
            lines.append(f"  {dataset[:12]:12s} {c[:28]:28s} {value:>9s}  {params[:28]:28s} {best_text:>18s}")
    return "\n".join(lines)
