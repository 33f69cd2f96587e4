"""Per-change ablations of the planned recipe on the real volumes (`quality.py`'s data split).

For a dataset, `dacapo.planning.planner` plans the run for ``--minutes``; each variant then trains the
*same* planned network for the same iterations and seed with one component of the recipe
reverted (``no_aug``: wave 1's augmentations — flips, transposes, intensity ±0.1 — instead of
the planned ones; ``bn``: batch norm after every convolution; ``bn_lr3e-3``: that and a
learning rate of 3e-3; ``no_norm``: raw / dtype maximum instead of the percentile normalisation;
``const_lr``: a constant learning rate instead of warm-up + cosine; ``no_rot`` / ``no_blur``:
the planned augmentations less rotation / blur; ``lr5e-4``; ``no_balance``: one-hot with
plain cross-entropy, distances with class fractions held at 1/2; ``fmaps12`` / ``fmaps24``:
planned again with 12 / 24 first-level feature maps for the same budget, so a smaller or
larger input; ``elasticM``: the planned augmentations plus an elastic field of M nm
standard deviation on control points 10 voxels of the coarsest axis apart, none across
sections). The held-out score
of the best checkpoint (task's main criterion, the other metrics at that choice) and of the
last checkpoint are printed as a markdown table with the difference to ``full``, and every
run is a line of ``ablations.jsonl`` in the work folder.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/quality_ablate.py --dataset
sstem_membranes --minutes 5 --variants full,no_aug,no_norm,const_lr``
(``--from-log`` prints the table of the runs already logged).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import attr
import quality as q
from _harness import log_entry, timed

VARIANTS = ("full", "no_aug", "no_norm", "const_lr", "no_rot", "no_blur", "lr5e-4", "lr3e-3",
            "fmaps12", "fmaps24", "no_balance", "bn", "bn_lr3e-3")
#: variant -> the run config planned with other feature maps (filled by main)
FMAPS: dict = {}


def elastic_magnitude(v: str) -> float | None:
    """M of an ``elasticM`` variant name (nm), else None."""
    number = v.removeprefix("elastic")
    return float(number) if v.startswith("elastic") and number.replace(".", "", 1).isdigit() \
        else None


def variant(rc, v: str):
    """``rc`` with one component of the recipe reverted (see the module docstring)."""
    from dacapo.experiments.trainer_config import AugmentConfig

    t = rc.trainer_config
    if v == "full":
        return rc
    if v == "no_aug":
        return attr.evolve(rc, trainer_config=attr.evolve(t, augment=AugmentConfig()))
    if v == "no_norm":
        return attr.evolve(rc, normalization=None)
    if v == "const_lr":
        return attr.evolve(rc, trainer_config=attr.evolve(t, lr_schedule="constant",
                                                          warmup_iterations=0))
    if v in ("lr5e-4", "lr3e-3"):
        return attr.evolve(rc, trainer_config=attr.evolve(t, learning_rate=float(v[2:])))
    if v in ("bn", "bn_lr3e-3"):  # batch norm after every convolution
        a = attr.evolve(rc.architecture_config, batch_norm=True)
        rc = attr.evolve(rc, architecture_config=a)
        return rc if v == "bn" else variant(rc, "lr3e-3")
    if v == "no_rot":
        return attr.evolve(rc, trainer_config=attr.evolve(
            t, augment=attr.evolve(t.augment, rotate=False)))
    if v == "no_blur":
        return attr.evolve(rc, trainer_config=attr.evolve(
            t, augment=attr.evolve(t.augment, blur=0.0)))
    if v == "no_balance":  # one-hot: plain cross-entropy; distances: class fractions held at 1/2
        if hasattr(rc.task_config, "balance_classes"):
            return attr.evolve(rc, task_config=attr.evolve(rc.task_config, balance_classes=False))
        return attr.evolve(rc, task_config=attr.evolve(rc.task_config, clipmin=0.4999,
                                                       clipmax=0.5001))
    if v in ("fmaps12", "fmaps24"):  # planned again with these feature maps, same budget
        return FMAPS[v]
    if elastic_magnitude(v) is not None:
        return attr.evolve(rc, trainer_config=attr.evolve(
            t, augment=attr.evolve(t.augment, elastic_magnitude=elastic_magnitude(v))))
    raise ValueError(f"--variants: {v!r} unknown; choose from {', '.join(VARIANTS)}")


def per_checkpoint(run_path: str, kind: str) -> list[float]:
    """The main criterion at its best parameters, per validated checkpoint."""
    from dacapo.runs.run_dir import RunDir

    crit, hib, _ = q.MAIN[kind]
    by_it: dict[int, float] = {}
    for r in RunDir(Path(run_path)).validation_scores():
        name = r["criterion"]
        if kind == "one_hot" and name.endswith("__iou") and not name.startswith("membrane"):
            name = "interior__iou"
        elif kind != "one_hot":
            name = q._canonical(name, kind)
        if name != crit or r["value"] != r["value"]:
            continue
        v = by_it.get(r["iteration"])
        by_it[r["iteration"]] = r["value"] if v is None else (max if hib else min)(v, r["value"])
    return [by_it[k] for k in sorted(by_it)]


def table(records: list[dict]) -> str:
    lines = ["| dataset | variant | budget | train time | held-out, best checkpoint | "
             "Δ vs full | per checkpoint (mean) | Δ mean |", "|---|---|---|---|---|---|---|---|"]
    full = {(r["dataset"], r["minutes"]): r for r in records if r["variant"] == "full"}
    for r in records:
        kind = q.DATASETS[r["dataset"]]["task"]
        crit, hib, _ = q.MAIN[kind]
        b = r["best"]
        ref = full.get((r["dataset"], r["minutes"]))
        delta = "-" if ref is None or r["variant"] == "full" else \
            f"{b.get(crit, float('nan')) - ref['best'].get(crit, float('nan')):+.3f}"
        shown = ", ".join(f"{c} {q._f(b.get(c))}" for c in q.SHOWN[kind] if c in b)
        per = r.get("per_checkpoint") or []
        mean = sum(per) / len(per) if per else float("nan")
        ref_per = (ref or {}).get("per_checkpoint") or []
        dmean = "-" if not ref_per or r["variant"] == "full" else \
            f"{mean - sum(ref_per) / len(ref_per):+.3f}"
        lines.append(f"| {r['dataset']} | {r['variant']} | {r['minutes']:g} min plan, "
                     f"{r['config'].rsplit('; ', 1)[-1]} | {r['train_s'] / 60:.1f} min | "
                     f"{shown} (it {b.get('iteration')}) | {delta} | "
                     f"{' / '.join(f'{v:.3f}' for v in per)} ({q._f(mean)}) | {dmean} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=list(q.DATASETS), default="sstem_membranes")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--variants", default="full,no_aug,no_norm,const_lr")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=str(q.DEFAULT_DATA))
    parser.add_argument("--work", default=str(q.ROOT / "quality_runs"))
    parser.add_argument("--from-log", action="store_true")
    args = parser.parse_args(argv)
    import torch

    from dacapo.training.loop import train_run

    torch.set_num_threads(1)
    work = Path(args.work)
    log_path = work / "ablations.jsonl"
    if args.from_log:
        records = [json.loads(line) for line in log_path.read_text().splitlines()]
        for r in records:  # per-checkpoint scores again from the run directories
            if Path(r.get("run_path", "")).is_dir():
                r["per_checkpoint"] = per_checkpoint(r["run_path"], q.DATASETS[r["dataset"]]["task"])
        print(table(records))
        return 0
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS and elastic_magnitude(v) is None]
    if unknown:  # before any training
        parser.error(f"--variants: {', '.join(unknown)} unknown; choose from {', '.join(VARIANTS)}, elasticM")
    work.mkdir(parents=True, exist_ok=True)
    kind = q.DATASETS[args.dataset]["task"]
    paths = q.prepare_data(args.dataset, Path(args.data), work)
    base = q.planned_config(args.dataset, paths, args.minutes, args.seed)
    for v in variants:
        if v.startswith("fmaps"):
            FMAPS[v] = q.planned_config(args.dataset, paths, args.minutes, args.seed,
                                        num_fmaps=int(v[5:]))
    records = []
    for v in variants:
        rc = attr.evolve(variant(base, v), name=f"ablate_{args.dataset}_{args.minutes:g}_{v}")
        train_s, run_dir = timed(train_run, rc, work / "ablations", progress=False)
        rec = {"dataset": args.dataset, "variant": v, "minutes": args.minutes,
               "seed": args.seed, "config": q.config_summary(rc),
               "train_s": round(train_s, 1), "best": q.best_row(run_dir, kind),
               "run_path": str(run_dir.path),
               "per_checkpoint": per_checkpoint(str(run_dir.path), kind)}
        log_entry(log_path, rec, show=False)
        records.append(rec)
    print(table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
