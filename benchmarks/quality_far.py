"""Adjacent slab against a block away from the training region: how much the benchmark's
held-out slab next to the training data overestimates.

For a volume of ``quality.DATASETS``: the first ``train`` z-slices are trained on (the
planned run, ``dacapo plan`` defaults for ``--minutes``), and the same run is validated on
two held-out slabs of ``slab`` slices each: **near**, the slices right after the training
region (what ``make bench-quality`` does), and **far**, the volume's last slices, at least
``gap`` slices from the training region. Each slab's raw reaches ``context_z`` real slices
before it (raw only; labels outside the training region are never trained on). Reported
per checkpoint: the main criterion on each slab at its best parameter.

The volume is read as `quality.py` reads it (`quality.resolve`: files and voxel size from
its folder and meta.json). Defaults: ``--train`` half of the volume's slices, ``--slab`` a
fifth (on lm_nuclei's 100: train z 0-49, near z 50-69, far z 80-99).

Run: ``.venv/bin/python benchmarks/quality_far.py --dataset lm_nuclei --minutes 20``; the log
goes to ``far_log.jsonl`` in the work folder (``quality_runs`` for our volumes,
`_harness.work_dir`).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
from pathlib import Path

import _data
import numpy as np
import quality
from _harness import data_dir, log_entry, timed, work_dir


def prepare(name: str, data: Path, work: Path, train: int, slab: int) -> dict[str, str]:
    """Zarr arrays ``train/{raw,gt}``, ``near/{raw,gt}``, ``far/{raw,gt}`` under
    ``work/<name>_far.zarr`` (rewritten every time: a few MB)."""
    from funlib.geometry import Coordinate
    from funlib.persistence import prepare_ds

    base = quality.prepare_data(name, data, work)  # the converted volume ("raw", "gt")
    spec = quality.DATASETS[name]
    raw_arr = quality.open_array(base["raw"], "raw")
    raw = np.asarray(raw_arr[raw_arr.roi])
    gt_arr = quality.open_array(base["gt"], "gt")
    gt = np.asarray(gt_arr[gt_arr.roi])
    depth = gt.shape[0]
    if train + 2 * slab > depth:
        print(f"quality_far: --train {train} + 2 × --slab {slab} exceeds the volume's {depth} "
              "slices", file=sys.stderr)
        raise SystemExit(2)
    container = work / f"{name}_far.zarr"
    shutil.rmtree(container, ignore_errors=True)
    vs = Coordinate(quality.resolve(name, data).grid_voxel)
    paths: dict[str, str] = {}

    def write(key: str, a: np.ndarray, z0: int) -> None:
        paths[key] = f"{container}/{key}"
        arr = prepare_ds(paths[key], shape=a.shape, offset=Coordinate((z0 * vs[0], 0, 0)),
                         voxel_size=vs, axis_names=["z", "y", "x"], units=["nm"] * 3,
                         dtype=a.dtype, chunk_shape=tuple(min(64, s) for s in a.shape), mode="w")
        arr[arr.roi] = a

    write("train/raw", raw[:train], 0)
    write("train/gt", gt[:train], 0)
    for key, z0 in (("near", train), ("far", depth - slab)):
        c0 = max(0, z0 - spec["context_z"])
        write(f"{key}/raw", raw[c0:z0 + slab], c0)
        write(f"{key}/gt", gt[z0:z0 + slab], z0)
    return paths


def per_checkpoint(run_dir, kind: str) -> dict[str, list]:
    """Slab -> [(iteration, best value of the main criterion)] per validation."""
    crit, higher, _ = quality.MAIN[kind]
    out: dict[str, dict[int, float]] = {}
    for r in run_dir.validation_scores():
        if quality._canonical(r["criterion"], kind) != crit or math.isnan(r["value"]):
            continue
        best = out.setdefault(r["dataset"], {})
        old = best.get(r["iteration"])
        if old is None or (r["value"] > old if higher else r["value"] < old):
            best[r["iteration"]] = r["value"]
    return {d: sorted((it, round(v, 4)) for it, v in vals.items()) for d, vals in out.items()}


#: the defaults of --train and --slab, fractions of the volume's z-slices
TRAIN, SLAB = 0.5, 0.2


@_data.exit_2
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(data_dir()))
    parser.add_argument("--work", default=None, help="default: `_harness.work_dir` of --data")
    parser.add_argument("--dataset", default="lm_nuclei", choices=sorted(quality.DATASETS))
    parser.add_argument("--train", type=int, default=None,
                        help=f"training z-slices (the first; default {TRAIN:g} of the volume's)")
    parser.add_argument("--slab", type=int, default=None,
                        help=f"z-slices of each held-out slab (default {SLAB:g} of the volume's)")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    vol = quality.resolve(args.dataset, Path(args.data))  # before any conversion or training
    depth = vol.shape[0]
    args.train = _data.fraction_count(depth, TRAIN) if args.train is None else args.train
    args.slab = _data.fraction_count(depth, SLAB) if args.slab is None else args.slab
    args.work = args.work or str(work_dir(args.data))
    from dacapo.planning.planner import plan_run
    from dacapo.training.loop import train_run
    from dacapo.training.step_timer import measure_step

    work = Path(args.work)
    paths = prepare(args.dataset, Path(args.data), work, args.train, args.slab)
    kind = quality.DATASETS[args.dataset]["task"]
    names = ({"classes": ["membrane", "interior"]} if kind == "one_hot"
             else {"channel": "nucleus"} if kind != "affinities" else {})
    rc, _ = plan_run([paths["train/gt"]], [paths["train/raw"]], kind, minutes=args.minutes,
                     name=f"far_{args.dataset}_s{args.seed}", seed=args.seed, **names, measure=measure_step,
                     validate=[(k, paths[f"{k}/raw"], paths[f"{k}/gt"]) for k in ("near", "far")])
    shutil.rmtree(work / "runs" / rc.name, ignore_errors=True)
    load0 = os.getloadavg()[0]
    train_s, run_dir = timed(train_run, rc, work / "runs", progress=False)
    entry = {"dataset": args.dataset, "run": rc.name, "train": args.train, "slab": args.slab,
             "voxel_size_nm": list(vol.voxel_size),
             **({"voxel_size_assumed": vol.voxel_assumed} if vol.voxel_assumed else {}),
             "minutes": args.minutes, "iterations": rc.num_iterations,
             "train_s": round(train_s, 1), "load": [round(load0, 2), round(os.getloadavg()[0], 2)],
             "criterion": quality.MAIN[kind][0], "per_checkpoint": per_checkpoint(run_dir, kind),
             "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    log_entry(work / "far_log.jsonl", entry)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
