"""Flip test-time augmentation on trained runs: each checkpoint re-validated with and without.

    python benchmarks/quality_flips.py RUN_DIR [RUN_DIR ...] [--work quality_runs/flips]

For each run: its checkpoints and run.yaml are copied twice into ``--work``
(``<run>_flips`` and ``<run>_plain``, ``test_time_flips`` on and off), every saved
checkpoint is validated in both (same data, same sweep), and the validation's time and, per
checkpoint, the best value of each main criterion over the sweep are printed side by side,
and for per-class tasks the scores of what ``dacapo apply`` takes
(`quality_organelles.score_best`), then a JSON line appended to ``--work``/flips_log.jsonl (`_harness.log_entry`). Scores are
deterministic; the times are the machine's (run it alone: the load is printed).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import yaml
from _harness import ROOT, data_dir, log_entry

from dacapo.pipeline.validate import validate_run
from dacapo.runs.run_dir import RunDir
from dacapo.runs.scores import main_criteria, main_criterion


def copy_run(src: Path, dst: Path, flips: bool) -> RunDir:
    """``src``'s checkpoints and run.yaml in a fresh ``dst``, ``test_time_flips`` set."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src / "checkpoints", dst / "checkpoints")
    rc = yaml.safe_load((src / "run.yaml").read_text())
    rc["test_time_flips"] = flips
    (dst / "run.yaml").write_text(yaml.safe_dump(rc, sort_keys=False))
    return RunDir(dst)


def best_per_checkpoint(rows: list[dict], task, criteria: list[str]) -> dict:
    """{dataset: {criterion: [best over the sweep at each iteration]}} of the validation
    ``rows``, iterations sorted."""
    its = sorted({r["iteration"] for r in rows})
    out: dict = {}
    for ds in sorted({r["dataset"] for r in rows}):
        for crit in criteria:
            higher = task.evaluation_scores.higher_is_better(crit)
            out.setdefault(ds, {})[crit] = [
                (max if higher else min)(
                    (r["value"] for r in rows if r["iteration"] == it and r["dataset"] == ds
                     and r["criterion"] == crit), default=float("nan"))
                for it in its]
    return {"iterations": its, "scores": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--work", type=Path, default=Path("quality_runs/flips"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for src in args.runs:
        if not (src / "run.yaml").is_file() or not any(
                int(p.stem) > 0 for p in (src / "checkpoints").glob("*.pt")):
            print(f"error: {src}: not a run directory with a trained checkpoint",
                  file=sys.stderr)
            sys.exit(2)
    for src in args.runs:
        entry = {"run": src.name, "load_before": os.getloadavg()[0]}
        for flips in (False, True):
            run_dir = copy_run(src, args.work / f"{src.name}_{'flips' if flips else 'plain'}",
                               flips)
            its = sorted(i for i in run_dir.checkpoint_iterations() if i > 0)
            t = time.perf_counter()
            for it in its:
                validate_run(run_dir, it)
            key = "flips" if flips else "plain"
            entry[f"{key}_seconds_per_validation"] = (time.perf_counter() - t) / len(its)
            task = run_dir.load_config().task_config.build()
            rows = run_dir.validation_scores()
            main = main_criterion(task)
            criteria = [main] + [c for c in main_criteria(sorted({r["criterion"] for r in rows}), 4)
                                 if c != main]
            entry[key] = best_per_checkpoint(rows, task, criteria)
            if hasattr(task.post_processor, "compose"):  # per-class: what apply takes
                import quality_organelles

                paths = quality_organelles.prepare(data_dir(), ROOT / "quality_runs")
                entry[f"{key}_apply"] = quality_organelles.score_best(run_dir, paths)
        entry["load_after"] = os.getloadavg()[0]
        for ds, scores in entry["plain"]["scores"].items():
            for crit, plain in scores.items():
                flipped = entry["flips"]["scores"][ds][crit]
                print(f"{src.name} {ds} {crit}: " + " · ".join(
                    f"{a:.3f}→{b:.3f}" for a, b in zip(plain, flipped)))
        print(f"{src.name}: {entry['plain_seconds_per_validation']:.0f} s → "
              f"{entry['flips_seconds_per_validation']:.0f} s per validation (load "
              f"{entry['load_before']:.1f}, {entry['load_after']:.1f})")
        log_entry(args.work / "flips_log.jsonl", entry)


if __name__ == "__main__":
    main()
