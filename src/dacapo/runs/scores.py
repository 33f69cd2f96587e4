"""Scores of a run: main criteria, parameter labels, best checkpoint and parameters, and
the score table.

A choice of checkpoint and parameters is made on the **mean over the validation
datasets** (`dataset_means`: each (iteration, parameter set) by the mean of its finite
values, every dataset weighing alike), not on the best single dataset: with several small
validation crops one of them scores perfectly at many settings, and its first such
setting carries over to the others no better than chance. ``best.json`` holds, per
criterion the task's score class stores (``store_best``), the best iteration, parameters
and mean over all validations so far, and each dataset's value there (`update_best`).
Whether higher is better is always asked of the task's score class.

A segmentation is degenerate (`is_degenerate`) when one value covers at least
``NEAR_CONSTANT`` of its scored voxels while the GT has no such value (or when it is
constant and the GT is not, or near-constant at an object where a sparse GT is
near-constant at background): a threshold beyond the prediction's range, a model that
predicts one class. Degenerate parameter sets are never chosen as best while another is
scored, and each validation names them in one warning line (`warn_degenerate`).
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import fastremap
import numpy as np

from dacapo.runs.run_dir import RunDir, as_run_dir

logger = logging.getLogger(__name__)

#: criteria shown in score tables, in this order (all are in the CSV): a name matches
#: itself, ``__<metric>`` matches that metric of every channel
MAIN_METRICS = [
    "overall_score", "__score",
    "voi", "voi_split", "voi_merge", "adapted_rand_error", "ap50", "map", "f1", "f1_50_95",
    "mean_dice", "mean_iou",
    "__dice", "__jaccard", "__hausdorff", "__f1_score", "__precision", "__recall", "__voi",
    "__iou",
]


#: a segmentation whose most common value covers at least this fraction of the scored
#: voxels is near-constant
NEAR_CONSTANT = 0.99


def dominant(data) -> tuple[Any, float]:
    """(most common value, the fraction of the voxels of ``data`` that hold it) of numpy or
    an array with ``.data``; ``(None, 1.0)`` when it is empty."""
    values = np.asarray(getattr(data, "data", data))
    if values.size == 0:
        return None, 1.0
    if values.dtype == bool:
        values = values.view(np.uint8)
    if values.dtype.kind in "iu":
        uniques, counts = fastremap.unique(values, return_counts=True)
    else:
        uniques, counts = np.unique(values, return_counts=True)
    top = int(np.argmax(counts))
    return uniques[top].item(), float(counts[top]) / values.size


def is_degenerate(segmentation, gt, limit: float = NEAR_CONSTANT) -> bool:
    """Whether ``segmentation`` is (near-)constant where ``gt`` is not: one value covers at
    least ``limit`` of its voxels while the GT's most common value covers less, or it is
    constant and the GT is not. A GT that is itself near-constant (sparse objects) makes a
    near-constant answer possibly right, unless it is near-constant the other way: its
    dominant value is an object (not 0) where the GT's is background (0), or the reverse
    (a segmentation that makes the whole image one object)."""
    (seg_value, seg), (gt_value, truth) = dominant(segmentation), dominant(gt)
    if (seg >= 1.0 and truth < 1.0) or (seg >= limit and truth < limit):
        return True
    return seg >= limit and truth >= limit and (seg_value == 0) != (gt_value == 0)


def warn_degenerate(rows: list[dict], limit: int = 6) -> int:
    """Log one warning line naming the parameter sets of ``rows`` (one validation) whose
    segmentation was degenerate, at most ``limit`` by name; returns their number."""
    flags: dict[tuple[str, str], bool] = {}
    for r in rows:
        key = (r["dataset"], json.dumps(r["parameters"], sort_keys=True))
        flags[key] = flags.get(key, False) or bool(r.get("degenerate"))
    flagged = [key for key, bad in flags.items() if bad]
    if flagged:
        names = [f"{ds}: {parameters_label(json.loads(p))}" for ds, p in flagged[:limit]]
        more = f" and {len(flagged) - limit} more" if len(flagged) > limit else ""
        logger.warning(
            "%d of %d parameter sets gave a (near-)constant segmentation (one value on >= "
            "%g%% of the scored voxels; the gt has none there, or background where it is "
            "object or the reverse), never chosen as best while another is scored: %s%s",
            len(flagged), len(flags), 100 * NEAR_CONSTANT,
            "; ".join(names), more)
    return len(flagged)


def parameters_dict(parameters) -> dict[str, Any]:
    """Parameters as a plain dict (``type`` + fields)."""
    if hasattr(parameters, "to_dict"):
        return parameters.to_dict()
    return {"value": str(parameters)}


def parameters_label(p: dict[str, Any], keys: set[str] | None = None) -> str:
    """``threshold=0.5`` style text of a parameters dict (only ``keys`` when given)."""
    items = [f"{k}={v}" for k, v in p.items()
             if k not in ("type", "id") and (keys is None or k in keys)]
    return ", ".join(items) or f"id={p.get('id')}"


def varying_keys(rows: list[dict]) -> set[str]:
    """The parameters whose value differs between the parameter sets of ``rows``."""
    values: dict[str, set[str]] = {}
    for r in rows:
        for k, v in r["parameters"].items():
            values.setdefault(k, set()).add(json.dumps(v, sort_keys=True))
    return {k for k, v in values.items() if len(v) > 1 and k not in ("type", "id")}


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
    """The criterion that chooses the checkpoint and parameters by default: the score
    class's ``MAIN_CRITERION`` when it sets one, else the first of `main_criteria` among
    the stored ones."""
    scores = task.evaluation_scores
    stored = [c for c in scores.criteria if scores.store_best(c)]
    preferred = getattr(scores, "MAIN_CRITERION", None)
    if preferred in (stored or scores.criteria):
        return preferred
    return main_criteria(stored or scores.criteria, 1)[0]


def dataset_means(rows: list[dict], criterion: str) -> list[dict]:
    """Per (iteration, parameter set) of ``rows``, in order of first appearance: the mean of
    ``criterion`` over the datasets where it is finite (each alike), as a row with
    ``iteration``, ``parameters``, ``value``, ``datasets`` ({dataset: value}) and
    ``degenerate`` (any of its segmentations was); sets without a finite value are left out."""
    groups: dict[tuple[int, str], dict[str, Any]] = {}
    for r in rows:
        if r["criterion"] != criterion:
            continue
        key = (r["iteration"], json.dumps(r["parameters"], sort_keys=True))
        g = groups.setdefault(key, {"iteration": r["iteration"], "parameters": r["parameters"],
                                    "datasets": {}, "degenerate": False})
        g["degenerate"] = g["degenerate"] or bool(r.get("degenerate"))
        if not math.isnan(r["value"]):
            g["datasets"][r["dataset"]] = r["value"]
    return [{**g, "value": sum(g["datasets"].values()) / len(g["datasets"])}
            for g in groups.values() if g["datasets"]]


def update_best(run_dir, task) -> dict[str, Any]:
    """Choose, per stored criterion, the best (iteration, parameters) of every stored row by
    its mean over the validation datasets (`choose_parameters`); rewrite ``best.json``.

    Degenerate segmentations ((near-)constant, `is_degenerate`) are passed over; a
    criterion scored only on degenerate ones gets its best among them, marked
    ``"degenerate": true`` (one warning line names them all)."""
    run_dir = as_run_dir(run_dir)
    rows = run_dir.validation_scores()
    scores = task.evaluation_scores
    best: dict[str, Any] = {}
    only_degenerate = []
    for criterion in scores.criteria:
        if not scores.store_best(criterion):
            continue
        higher = bool(scores.higher_is_better(criterion))
        chosen = choose_parameters(rows, criterion, higher)
        if chosen is None:
            continue
        best[criterion] = {
            "iteration": int(chosen["iteration"]),
            "parameters": chosen["parameters"],
            "value": float(chosen["value"]),
            "datasets": {k: float(v) for k, v in chosen["datasets"].items()},
            "higher_is_better": higher,
        }
        if chosen["degenerate"]:
            best[criterion]["degenerate"] = True
            only_degenerate.append(criterion)
    main = best.get(main_criterion(task))
    if main is not None:  # the choice of apply, made without a dataset: said
        scored = {r["dataset"] for r in rows if r["iteration"] == main["iteration"]}
        missing = sorted(scored - set(main["datasets"]))
        if missing:
            logger.warning("%s is undefined (NaN) on dataset(s) %s at its best setting: chosen "
                           "on the mean over the other %d", main_criterion(task),
                           ", ".join(missing), len(main["datasets"]))
    if only_degenerate:  # one line, however many criteria (6 by name)
        more = len(only_degenerate) - 6
        logger.warning("every segmentation scored so far is degenerate ((near-)constant) for "
                       "%d criteria (%s%s); best.json names one for each, marked degenerate",
                       len(only_degenerate), ", ".join(only_degenerate[:6]),
                       f" and {more} more" if more > 0 else "")
    run_dir.save_best(best)
    return best


def choose_checkpoint_and_parameters(run_dir: RunDir, task, iteration: int | None,
                                     criterion: str | None, rows: list[dict] | None = None):
    """(iteration, parameters object) to apply.

    Checkpoint: ``iteration`` if given; else the best iteration of ``criterion`` (default:
    `main_criterion`) from ``best.json``; else the latest checkpoint. Parameters: the best
    of that criterion by its mean over the validation datasets (at that iteration when an
    iteration is given, from ``validation_scores.csv``, or ``rows`` if already read,
    `choose_parameters`); with no validation scores,
    the first of the sweep (logged as a warning).
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
        rows = [r for r in (run_dir.validation_scores() if rows is None else rows)
                if r["iteration"] == iteration]
        chosen = choose_parameters(rows, crit, scores.higher_is_better(crit))
        if chosen is not None:
            params_dict = chosen["parameters"]
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
    return "nan" if math.isnan(value) else f"{0.0 if abs(value) < 5e-5 else value:.4f}"


def choose_parameters(rows: list[dict], criterion: str, higher_is_better: bool) -> dict | None:
    """The best (iteration, parameters) of ``rows`` by ``criterion``'s mean over their
    datasets (`dataset_means`; a row of it, the first of equals), degenerate segmentations
    (`is_degenerate`) only when all are; None without a finite value."""
    cands = dataset_means(rows, criterion)
    fine = [r for r in cands if not r["degenerate"]]
    if not (fine or cands):
        return None
    return (max if higher_is_better else min)(fine or cands, key=lambda r: r["value"])


#: how the instance metrics treat label 0, shown under tables that have them
CONVENTIONS = {
    "adapted_rand_error": "adapted_rand_error, voi: GT label 0 is unlabelled and ignored; "
                          "segment 0 on labelled voxels counts as singletons (CREMI)",
}


def format_table(run_dir, iteration: int | None = None, limit: int = 10) -> str:
    """One-screen score table of ``iteration`` (default: the last validated), per dataset:
    every main metric at the parameters the task's main criterion chooses (on the mean
    over the datasets, as `apply` takes them), each metric's own best over the sweep on
    that dataset, and the best so far (``best.json``, means over the datasets)."""
    run_dir = as_run_dir(run_dir)
    rows = run_dir.validation_scores()
    if not rows:
        return f"run {run_dir.path.name}: no validation scores yet"
    task = run_dir.load_config().task_config.build()
    scores = task.evaluation_scores
    main = main_criterion(task)
    if iteration is None:
        iteration = max(r["iteration"] for r in rows)
    rows = [r for r in rows if r["iteration"] == iteration]
    best = run_dir.load_best()
    shown = main_criteria(list(dict.fromkeys(r["criterion"] for r in rows)), limit)
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    chosen = choose_parameters(rows, main, scores.higher_is_better(main))
    key = None if chosen is None else json.dumps(chosen["parameters"], sort_keys=True)
    keys = varying_keys(rows)  # the swept ones: the others are alike in every set
    label = "-" if chosen is None else parameters_label(chosen["parameters"], keys)
    over = f" on the mean over {len(datasets)} datasets" if len(datasets) > 1 else ""
    lines = [f"run {run_dir.path.name}: validation at iteration {iteration} "
             f"(parameters chosen by {main}{over}: {label})"]
    width = max([24] + [len(parameters_label(r["parameters"], keys)) for r in rows])
    header = (f"  {'criterion':28s} {'value':>9s}  {'sweep best':>10s} {'at':{width}s} "
              f"{'best (iteration)':>18s}")
    for dataset in datasets:
        here = [r for r in rows if r["dataset"] == dataset]
        at = {r["criterion"]: r for r in here
              if json.dumps(r["parameters"], sort_keys=True) == key}
        flag = (" DEGENERATE ((near-)constant segmentation)"
                if any(r.get("degenerate") for r in at.values()) else "")
        fraction = here[0].get("gt_fraction", math.nan)
        scored = (f"scored {here[0]['scored_roi']} = {100 * fraction:.1f}% of the gt ROI"
                  if here[0].get("scored_roi") else "scored ROI not recorded")
        lines += [f"  dataset {dataset}: {label}{flag}; {scored}", header,
                  "  " + "-" * (len(header) - 2)]
        for c in shown:
            value = _fmt(at[c]["value"]) if c in at else "-"
            top = choose_parameters(here, c, scores.higher_is_better(c))
            sweep = ("nan", "-") if top is None else (_fmt(top["value"]),
                                                      parameters_label(top["parameters"], keys))
            b = best.get(c)
            best_text = f"{_fmt(b['value'])} ({b['iteration']})" if b else "-"
            lines.append(f"  {c[:28]:28s} {value:>9s}  {sweep[0]:>10s} {sweep[1]:{width}s} "
                         f"{best_text:>18s}")
    lines += [f"  ({text})" for c, text in CONVENTIONS.items() if c in shown]
    from dacapo.runs.class_parameters import joined_lines  # lazy: it imports this module
    lines += joined_lines(run_dir, task, rows)
    return "\n".join(lines)


def summary_line(run_dir) -> str:
    """The run in one line: its folder, its last checkpoint, the best of the task's main
    criterion (`main_criterion`) and where (``dacapo train --quiet`` prints it)."""
    run_dir = as_run_dir(run_dir)
    line = (f"run directory: {run_dir.path}; trained to iteration "
            f"{run_dir.latest_checkpoint() or 0}")
    main = main_criterion(run_dir.load_config().task_config.build())
    best = run_dir.load_best().get(main)
    if best:
        line += (f"; best {main} {_fmt(best['value'])} at iteration {best['iteration']} "
                 f"({parameters_label(best['parameters'])})")
    return line
