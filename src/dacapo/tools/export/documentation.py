"""The README.md of an exported bioimage.io package, generated from the run.

Sections: task (config YAML, output channels), data (datasets, voxel size, raw dtype and
normalisation), input/output sizes, post-processing parameters to use, validation (best
scores from ``best.json``; bioimage.io asks for a "Validation" section) and how to
fine-tune the package with dacapo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dacapo.experiments.normalization import NormalizationConfig
from dacapo.io.config_yaml import to_dict
from dacapo.runs.scores import main_criteria


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _params(parameters: dict) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in parameters.items() if k not in ("type", "id"))


def documentation(rc, task, iteration: int, criterion: str, parameters: dict, best: dict,
                  grids, axis_ids, voxel_size, out_voxel_size, raw_dtype, norm, channels,
                  unit: str | None) -> str:
    """The package's README.md (markdown), from the run config and its scores."""
    tc = rc.task_config
    sub = getattr(tc, "sub_task_config", None) or tc
    u = f" {unit}" if unit else ""
    lines = [f"# {rc.name}", "",
             f"A {type(sub).__name__.removesuffix('Config')} model trained with dacapo "
             f"(run `{rc.name}`, checkpoint of iteration {iteration}).", "",
             "## Task", "", "```yaml", yaml.safe_dump(to_dict(tc), sort_keys=False).rstrip(),
             "```", "", "Output channels: " + ", ".join(f"`{c}`" for c in channels) + ".", "",
             "## Data", ""]
    for split in ("train", "validate"):
        for ds in getattr(rc.datasplit_config, split):
            lines.append(f"- {split}: `{ds.name}` (raw `{Path(ds.raw).name}`, gt `{Path(ds.gt).name}`)")
    context = [-g[2] // 2 for g in grids]
    lines += ["", f"Voxel size {' x '.join(str(v) for v in voxel_size)}{u} "
              f"({', '.join(axis_ids)}); output voxel size "
              f"{' x '.join(str(v) for v in out_voxel_size)}{u}.",
              f"Raw dtype {raw_dtype}; normalisation (as in training): " +
              ("raw as float32, unchanged." if norm is None else
               _per_array(norm) if isinstance(norm, NormalizationConfig) else
               f"raw as float32 times {norm[0]:.6g} plus {norm[1]:.6g}."), "",
              "## Input and output sizes", "",
              "Input sizes per axis: " + ", ".join(
                  f"{a} = {g[0]} + n*{g[1]}" for a, g in zip(axis_ids, grids)) + ".",
              "The output is the input minus the valid-padding context of "
              + ", ".join(f"{c}" for c in context) + " voxels on each side ("
              + ", ".join(axis_ids) + "): predict overlapping tiles and stitch their outputs."
              + (" The scores below are of the mean over the 4 in-plane flips of each tile "
                 "(flip the input, predict, flip the output back; `test_time_flips`): one "
                 "pass of the model scores slightly lower." if rc.test_time_flips else ""),
              "", "## Post-processing", "",
              f"{type(task.post_processor).__name__}; parameters to use (best `{criterion}`): "
              + _params(parameters) + ".",
              "", "## Validation", ""]
    if best:
        lines += [f"Best scores on the validation data (all {len(best)} criteria: the run's "
                  "best.json):", "",
                  "| criterion | value (mean over the datasets) | iteration | datasets | "
                  "parameters |", "|---|---|---|---|---|"]
        for crit in main_criteria(list(best), 10):
            b = best[crit]
            params = _params(b.get("parameters") or {})
            lines.append(f"| {crit} | {_fmt(b.get('value'))} | {b.get('iteration')} | "
                         f"{', '.join(b.get('datasets') or {}) or '-'} | {params} |")
    else:
        lines.append("This run was not validated (no best.json).")
    lines += ["", "The package's test output is dacapo's own prediction on its test input "
              "(a crop of the validation raw).", "",
              "## Fine-tuning with dacapo", "",
              "Use this zip as the `weights` of a `PretrainedTaskConfig` whose `sub_task_config` "
              "is the task above, with this architecture:", "", "```yaml",
              yaml.safe_dump(to_dict(rc.architecture_config), sort_keys=False).rstrip(), "```", ""]
    return "\n".join(lines)


def _per_array(norm: NormalizationConfig) -> str:
    what = (f"its own {norm.lower_percentile:g} / {norm.upper_percentile:g} percentiles map "
            "to 0 / 1" if norm.method == "percentile" else "its own mean and standard "
            "deviation map to 0 / 1")
    return f"each image by its own statistics: {what} (computed per sample)."
