"""Per-class best parameters: each class's post-processing chosen on its own criterion.

For a task with per-class post-processing (its post-processor has ``compose``, e.g.
`dacapo.experiments.tasks.post_processors.PerClassPostProcessor`), class c's setting is that
of the parameter set with the best mean ``<c>__score`` over the validation datasets of one
iteration (`validation_scores.csv`; degenerate segmentations only when every set is), and
the chosen settings are joined into one parameter set (``compose``). Class c's output
depends only on its own setting, so the joined set scores each class as its best set did.

The checkpoint of the joined set (`best_joined_iteration`): the validated iteration whose
joined set has the best overall CellMap score — per validation dataset
``sqrt(mean instance classes' <c>__score × mean semantic classes' <c>__score)``
(`dacapo.ops.cellmap_metrics.overall_of`; the classes of one crop weigh alike), averaged
over the datasets. ``best.json``'s ``overall_score`` is the best *single* parameter set's,
which can prefer another checkpoint than the joined set that ``apply`` writes.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict

from dacapo.ops.cellmap_metrics import overall_of
from dacapo.runs.run_dir import RunDir
from dacapo.runs.scores import choose_checkpoint_and_parameters, parameters_dict

logger = logging.getLogger(__name__)


def class_criterion(name: str) -> str:
    """The criterion that chooses class ``name``'s post-processing."""
    return f"{name}__score"


def _chosen_keys(rows: list[dict], task) -> dict[str, str | None]:
    """Class -> the JSON key of its best parameter set among ``rows`` (one iteration), or
    None without finite scores."""
    sweep = {json.dumps(parameters_dict(p), sort_keys=True) for p in task.parameters}
    by_criterion: dict[str, list[tuple[str, float, bool]]] = defaultdict(list)
    for r in rows:  # each row's parameters keyed once
        if not math.isnan(r["value"]):
            by_criterion[r["criterion"]].append(
                (json.dumps(r["parameters"], sort_keys=True), r["value"], bool(r.get("degenerate"))))
    chosen: dict[str, str | None] = {}
    for name in task.post_processor.classes:
        crit = class_criterion(name)
        higher = task.evaluation_scores.higher_is_better(crit)
        chosen[name] = None
        for degenerate_ok in (False, True):
            values: dict[str, list[float]] = defaultdict(list)
            for key, v, degenerate in by_criterion[crit]:
                if degenerate_ok or not degenerate:
                    values[key].append(v)
            means = {k: sum(v) / len(v) for k, v in values.items() if k in sweep}
            if means:
                chosen[name] = (max if higher else min)(means, key=means.get)
                break
    return chosen


def joined_overall(rows: list[dict], task) -> float:
    """The overall score of the joined per-class set of ``rows`` (one iteration), averaged
    over the validation datasets (module docstring); NaN without scores."""
    chosen = _chosen_keys(rows, task)
    instance = set(task.post_processor.instance_classes)
    value = {(r["dataset"], r["criterion"], json.dumps(r["parameters"], sort_keys=True)):
             r["value"] for r in rows}
    overall = []
    for dataset in sorted({r["dataset"] for r in rows}):
        scores = {name: value.get((dataset, class_criterion(name), key), math.nan)
                  for name, key in chosen.items() if key is not None}
        inst = [v for n, v in scores.items() if n in instance and not math.isnan(v)]
        sem = [v for n, v in scores.items() if n not in instance and not math.isnan(v)]
        o = overall_of(sum(inst) / len(inst) if inst else math.nan,
                       sum(sem) / len(sem) if sem else math.nan)
        if not math.isnan(o):
            overall.append(o)
    return sum(overall) / len(overall) if overall else math.nan


def best_joined_iteration(run_dir: RunDir, task, rows: list[dict] | None = None) -> int | None:
    """The validated iteration with a checkpoint whose joined per-class set scores best
    (`joined_overall`; the earliest of equal ones); None without validation scores.
    ``rows``: the run's validation rows if already read."""
    scored = joined_scores(run_dir, task, rows)
    return max(scored, key=scored.get) if scored else None


def joined_scores(run_dir: RunDir, task, rows: list[dict] | None = None) -> dict[int, float]:
    """Validated iteration with a checkpoint -> the `joined_overall` of its rows (finite
    ones only), iterations in order (``rows``: the run's validation rows if already read)."""
    by_iteration: dict[int, list[dict]] = defaultdict(list)
    for r in run_dir.validation_scores() if rows is None else rows:
        by_iteration[int(r["iteration"])].append(r)
    saved = set(run_dir.checkpoint_iterations())
    scored = {it: joined_overall(rows, task) for it, rows in sorted(by_iteration.items())
              if it in saved}
    return {it: v for it, v in scored.items() if not math.isnan(v)}


def compose_class_parameters(run_dir: RunDir, task, iteration: int, fallback,
                             rows: list[dict] | None = None):
    """The per-class best parameters of ``iteration`` joined into one set (module
    docstring); a class without finite scores there keeps its setting in ``fallback``
    (``rows``: the run's validation rows if already read)."""
    post = task.post_processor
    sweep = {json.dumps(parameters_dict(p), sort_keys=True): p for p in task.parameters}
    rows = [r for r in (run_dir.validation_scores() if rows is None else rows)
            if r["iteration"] == iteration]
    chosen = {}
    for name, best in _chosen_keys(rows, task).items():
        if best is None:
            logger.warning("class %s: no %s scores at iteration %d; using %s", name,
                           class_criterion(name), iteration, fallback.setting(name).label)
            chosen[name] = fallback.setting(name)
        else:
            chosen[name] = sweep[best].setting(name)
    return post.compose(chosen)


def output_checkpoint_and_parameters(run_dir: RunDir, task, iteration: int | None = None,
                                     criterion: str | None = None):
    """(iteration, parameters) that ``apply`` and the export use:
    `choose_checkpoint_and_parameters`, except that a task with per-class post-processing
    takes, unless ``iteration`` or ``criterion`` is given, the `best_joined_iteration`,
    and there each class's own best setting (`compose_class_parameters`). A given
    ``iteration`` without a checkpoint is FileNotFoundError first."""
    if iteration is not None:  # no checkpoint: said before any choice is logged
        run_dir.existing_checkpoint(iteration)
    per_class = hasattr(task.post_processor, "compose")
    rows = run_dir.validation_scores()  # read once
    if per_class and iteration is None and criterion is None:
        iteration = best_joined_iteration(run_dir, task, rows)
    iteration, parameters = choose_checkpoint_and_parameters(run_dir, task, iteration, criterion,
                                                             rows)
    if per_class:
        parameters = compose_class_parameters(run_dir, task, iteration, parameters, rows)
    return iteration, parameters


def joined_lines(run_dir: RunDir, task, rows: list[dict]) -> list[str]:
    """The score table's lines on the joined per-class set of ``rows`` (one iteration):
    its overall score there, the iteration `apply` takes, and each class's setting; none
    for a task without per-class post-processing."""
    if not hasattr(task.post_processor, "compose") or not rows:
        return []
    sweep = {json.dumps(parameters_dict(p), sort_keys=True): p for p in task.parameters}
    settings = "; ".join(f"{name}: {sweep[key].setting(name).label}"
                         for name, key in _chosen_keys(rows, task).items() if key is not None)
    scored = joined_scores(run_dir, task)
    if not scored:
        taken = "no checkpoint of a validated iteration"
    else:
        best = max(scored, key=scored.get)  # as best_joined_iteration
        taken = f"apply takes iteration {best}: overall {scored[best]:.4f}"
    return [f"  per-class settings joined (what apply writes): overall "
            f"{joined_overall(rows, task):.4f} here; {taken}", f"    {settings}"]
