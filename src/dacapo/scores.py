"""Scores of a run: main criteria, parameter labels, best checkpoint and parameters, and
the score table.

``best.json`` holds, per criterion the task's score class stores (``store_best``), the
best dataset, iteration, parameters and value over all validations so far
(`update_best`). Whether higher is better is always asked of the task's score class.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from dacapo.store.run_dir import RunDir

logger = logging.getLogger(__name__)

#: criteria shown in score tables, in this order (all are in the CSV): a name matches
#: itself, ``__<metric>`` matches that metric of every channel
MAIN_METRICS = [
    "voi", "voi_split", "voi_merge", "adapted_rand_error", "ap50", "map", "f1",
    "mean_dice", "mean_iou",
    "__dice", "__jaccard", "__hausdorff", "__f1_score", "__precision", "__recall", "__voi",
    "__iou",
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
    """The criterion that chooses the checkpoint and parameters by default (first of
    `main_criteria` among the stored ones)."""
    scores = task.evaluation_scores
    stored = [c for c in scores.criteria if scores.store_best(c)]
    return main_criteria(stored or scores.criteria, 1)[0]


def as_run_dir(run_dir) -> RunDir:
    return run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)


def update_best(run_dir, task) -> dict[str, Any]:
    """Replay all stored scores through the task's evaluator; rewrite ``best.json``."""
    run_dir = as_run_dir(run_dir)
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


def choose_checkpoint_and_parameters(run_dir: RunDir, task, iteration: int | None,
                                     criterion: str | None):
    """(iteration, parameters object) to apply.

    Checkpoint: ``iteration`` if given; else the best iteration of ``criterion`` (default:
    `main_criterion`) from ``best.json``; else the latest checkpoint. Parameters: the best
    of that criterion (at that iteration when an iteration is given, from
    ``validation_scores.csv``); with no validation scores, the first of the sweep (logged
    as a warning).
    """
    scores = task.evaluation_scores
    if criterion is not None and criterion not in scores.criteria:
        raise ValueError(f"criterion {criterion!r} is not one of this task's: {scores.criteria}")
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
            pick = max if scores.higher_is_better(crit) else min
            params_dict = pick(rows, key=lambda r: r["value"])["parameters"]
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


def _fmt(value: float) -> str:
    """4 decimals; no "-0.0000" for a value that rounds to zero."""
    return f"{0.0 if abs(value) < 5e-5 else value:.4f}"


def format_table(run_dir, iteration: int | None = None, limit: int = 10) -> str:
    """One-screen score table: main criteria at ``iteration`` (default: the last
    validated) per dataset, best over the sweep, and the best so far from ``best.json``."""
    run_dir = as_run_dir(run_dir)
    rows = run_dir.validation_scores()
    if not rows:
        return f"run {run_dir.path.name}: no validation scores yet"
    scores = run_dir.load_config().task_config.build().evaluation_scores
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
            if finite:
                pick = max if scores.higher_is_better(c) else min
                top = pick(finite, key=lambda r: r["value"])
                value, params = _fmt(top["value"]), parameters_label(top["parameters"])
            else:
                value, params = "nan", "-"
            best_text = f"{_fmt(b['value'])} ({b['iteration']})" if b else "-"
            lines.append(f"  {dataset[:12]:12s} {c[:28]:28s} {value:>9s}  {params[:28]:28s} {best_text:>18s}")
    return "\n".join(lines)
