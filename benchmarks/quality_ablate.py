"""Per-change ablations of the planned recipe on the real volumes (`quality.py`'s data split).

For a dataset, `dacapo.plan` plans the run for ``--minutes``; each variant then trains the
*same* planned network for the same iterations and seed with one component of the recipe
reverted (``no_aug``: wave 1's augmentations — flips, transposes, intensity ±0.1 — instead of
the planned ones; ``no_norm``: raw / dtype maximum instead of the percentile normalisation;
``const_lr``: a constant learning rate instead of warm-up + cosine; ``no_rot`` / ``no_blur``:
the planned augmentations less rotation / blur; ``lr5e-4``; ``fmaps24``). The held-out score
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
import time
from pathlib import Path

import attr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality as q  # noqa: E402

VARIANTS = ("full", "no_aug", "no_norm", "const_lr", "no_rot", "no_blur", "lr5e-4", "fmaps24",
            "no_balance")


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
    if v == "lr5e-4":
        return attr.evolve(rc, trainer_config=attr.evolve(t, learning_rate=5e-4))
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
    if v == "fmaps24":
        a = rc.architecture_config
        return attr.evolve(rc, architecture_config=attr.evolve(a, num_fmaps=24, fmaps_out=24))
    raise ValueError(f"--variants: {v!r} unknown; choose from {', '.join(VARIANTS)}")


def table(records: list[dict]) -> str:
    lines = ["| dataset | variant | budget | train time | held-out, best checkpoint | "
             "Δ vs full | last checkpoint |", "|---|---|---|---|---|---|---|"]
    full = {(r["dataset"], r["minutes"]): r for r in records if r["variant"] == "full"}
    for r in records:
        kind = q.DATASETS[r["dataset"]]["task"]
        crit, hib, _ = q.MAIN[kind]
        b = r["best"]
        ref = full.get((r["dataset"], r["minutes"]))
        delta = "-" if ref is None or r["variant"] == "full" else \
            f"{b.get(crit, float('nan')) - ref['best'].get(crit, float('nan')):+.3f}"
        shown = ", ".join(f"{c} {q._f(b.get(c))}" for c in q.SHOWN[kind] if c in b)
        lines.append(f"| {r['dataset']} | {r['variant']} | {r['minutes']:g} min plan, "
                     f"{r['config'].rsplit('; ', 1)[-1]} | {r['train_s'] / 60:.1f} min | "
                     f"{shown} (it {b.get('iteration')}) | {delta} | "
                     f"{crit} {q._f(b.get('last_' + crit))} |")
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

    from dacapo.train import train_run

    torch.set_num_threads(1)
    work = Path(args.work)
    log_path = work / "ablations.jsonl"
    if args.from_log:
        print(table([json.loads(line) for line in log_path.read_text().splitlines()]))
        return 0
    variants = args.variants.split(",")
    for v in variants:
        variant(None, v) if v not in VARIANTS else None  # unknown names fail before training
    work.mkdir(parents=True, exist_ok=True)
    kind = q.DATASETS[args.dataset]["task"]
    paths = q.prepare_data(args.dataset, Path(args.data), work)
    base = q.planned_config(args.dataset, paths, args.minutes, args.seed)
    records = []
    for v in variants:
        rc = attr.evolve(variant(base, v), name=f"ablate_{args.dataset}_{args.minutes:g}_{v}")
        t0 = time.perf_counter()
        run_dir = train_run(rc, work / "ablations", progress=False)
        rec = {"dataset": args.dataset, "variant": v, "minutes": args.minutes,
               "seed": args.seed, "config": q.config_summary(rc),
               "train_s": round(time.perf_counter() - t0, 1), "best": q.best_row(run_dir, kind)}
        with open(log_path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        records.append(rec)
    print(table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
