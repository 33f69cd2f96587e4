"""Per-class best parameters: each class's post-processing chosen on its own criterion.

For a task with per-class post-processing (its post-processor has ``compose``, e.g.
`dacapo.experiments.tasks.post_processors.PerClassPostProcessor`), class c's setting is that
of the parameter set with the best mean ``<c>__score`` over the validation datasets of one
iteration (`validation_scores.csv`; degenerate segmentations only when every set is), and
the chosen settings are joined into one parameter set (``compose``). Class c's output
depends only on its own setting, so the joined set scores each class as its best set did.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict

from dacapo.runs.run_dir import RunDir
from dacapo.runs.scores import parameters_dict

logger = logging.getLogger(__name__)


def class_criterion(name: str) -> str:
    """The criterion that chooses class ``name``'s post-processing."""
    return f"{name}__score"


def compose_class_parameters(run_dir: RunDir, task, iteration: int, fallback):
    """The per-class best parameters of ``iteration`` joined into one set (module
    docstring); a class without finite scores there keeps its setting in ``fallback``."""
    post = task.post_processor
    sweep = {json.dumps(parameters_dict(p), sort_keys=True): p for p in task.parameters}
    rows = [r for r in run_dir.validation_scores() if r["iteration"] == iteration]
    chosen = {}
    for name in post.classes:
        crit = class_criterion(name)
        higher = task.evaluation_scores.higher_is_better(crit)
        best = None
        for degenerate_ok in (False, True):
            values: dict[str, list[float]] = defaultdict(list)
            for r in rows:
                if r["criterion"] == crit and not math.isnan(r["value"]) and (
                        degenerate_ok or not r.get("degenerate")):
                    values[json.dumps(r["parameters"], sort_keys=True)].append(r["value"])
            means = {k: sum(v) / len(v) for k, v in values.items() if k in sweep}
            if means:
                best = (max if higher else min)(means, key=means.get)
                break
        if best is None:
            logger.warning("class %s: no %s scores at iteration %d; using %s", name, crit,
                           iteration, fallback.setting(name).label)
            chosen[name] = fallback.setting(name)
        else:
            chosen[name] = sweep[best].setting(name)
    return post.compose(chosen)
