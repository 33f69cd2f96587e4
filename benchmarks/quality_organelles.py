"""Organelles on real ssTEM: one model for five classes, full and partial annotation.

The volume ``sstem_organelles`` (12 sections × 1024², 50 × 4.6 × 4.6 nm; classes 1
membrane, 2 glia/extracellular, 3 mitochondrion, 4 synapse, 5 cytoplasm, every voxel
labelled) is split by section: sections 0..8 train, 9..11 are held out (their labels are
never trained on; their raw comes with 2 sections of context before them). The training
sections are two crops, the halves y < 512 and y >= 512. Variants, same plan otherwise:

- ``full``: both crops annotate every class;
- ``partial``: mitochondria annotated only in crop A, synapses only in crop B, membranes
  and glia in both, cytoplasm (the "everything else" an annotator does not paint) in none:
  the datasplit says so with ``annotated``; a voxel of an unannotated class is unknown (the
  loss is the likelihood of "one of the unannotated classes"). (With cytoplasm annotated
  too, the one unannotated class of a crop is implied wherever no other class is, and the
  run equals full annotation bit for bit: a check of the loss, not an experiment);
- ``naive``: the same crops, but the unannotated class's voxels are called cytoplasm (the
  "everything else" class), as a tool without partial annotations would have to.

Each run is planned by `dacapo.planning.planner.plan_run` (``--task one_hot --classes``)
for ``--minutes`` of CPU, trained, validated on the held-out sections; the best checkpoint
and parameters by the mean IoU are scored again on the held-out sections with the CellMap
metrics (`dacapo.ops.cellmap_metrics`): IoU per class, mitochondria as instances
(connected components) F1@0.5, Hausdorff score, combined; the overall score. Baseline:
Otsu's threshold of the raw for the mitochondria (dark) and the membranes (dark).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/quality_organelles.py --variants
full,partial,naive --minutes 20``; results go to ``quality_runs/organelles_log.jsonl``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import attr
import numpy as np
from _harness import ROOT, data_dir, log_entry, timed
from quality import overridden

CLASSES = ["membrane", "glia_extracellular", "mitochondrion", "synapse", "cytoplasm"]
VOXEL = (50, 4.6, 4.6)
HOLDOUT = 3
CONTEXT = 2
#: partial annotation: crop -> the class it does not annotate
UNANNOTATED = {"a": "synapse", "b": "mitochondrion"}
OTHER = "cytoplasm"


def prepare(data: Path, work: Path) -> dict[str, str]:
    """Zarr arrays under ``work/sstem_organelles.zarr`` (kept when present)."""
    import tifffile
    from funlib.geometry import Coordinate
    from funlib.persistence import prepare_ds

    container = work / "sstem_organelles.zarr"
    keys = ["raw", "validate/raw", "validate/gt"] + [
        f"{v}/{c}/{k}" for v in ("full", "naive") for c in "ab" for k in ("raw", "gt")]
    paths = {k: f"{container}/{k}" for k in keys}
    paths.update({f"partial/{c}/{k}": paths[f"full/{c}/{k}"] for c in "ab" for k in ("raw", "gt")})
    if (container / ".prepared").is_file():
        return paths
    if container.exists():
        shutil.rmtree(container)
    raw = tifffile.imread(data / "sstem_organelles" / "raw.tif")
    ids = tifffile.imread(data / "sstem_organelles" / "classes.tif")
    gt = (ids.astype(np.int64) - 1).astype(np.uint8)  # class ids 0..4
    z_split = gt.shape[0] - HOLDOUT
    vs = Coordinate(VOXEL)

    def write(key: str, a: np.ndarray, z0: int, y0: int = 0) -> None:
        arr = prepare_ds(paths[key], shape=a.shape, offset=Coordinate((z0, y0, 0)) * vs,
                         voxel_size=vs, axis_names=["z", "y", "x"], units=["nm"] * 3,
                         dtype=a.dtype, chunk_shape=(1, 256, 256), mode="w")
        arr[arr.roi] = a

    write("raw", raw, 0)
    write("validate/gt", gt[z_split:], z_split)
    write("validate/raw", raw[z_split - CONTEXT:], z_split - CONTEXT)
    half = gt.shape[1] // 2
    for c, (y0, y1) in {"a": (0, half), "b": (half, gt.shape[1])}.items():
        g = gt[:z_split, y0:y1]
        write(f"full/{c}/raw", raw[:z_split, y0:y1], 0, y0)
        write(f"full/{c}/gt", g, 0, y0)
        naive = g.copy()
        naive[naive == CLASSES.index(UNANNOTATED[c])] = CLASSES.index(OTHER)
        write(f"naive/{c}/raw", raw[:z_split, y0:y1], 0, y0)
        write(f"naive/{c}/gt", naive, 0, y0)
    (container / ".prepared").write_text("ok")
    return paths


def planned(variant: str, paths: dict[str, str], minutes: float, seed: int,
            measure=None):
    """The variant's plan; ``measure`` None (the benchmark's runs): the cost model alone, so
    that every variant trains the same plan; a step timer (`plan_run`'s) otherwise."""
    from dacapo.planning.planner import plan_run

    gts = [paths[f"{variant}/{c}/gt"] for c in "ab"]
    raws = [paths[f"{variant}/{c}/raw"] for c in "ab"]
    rc, _ = plan_run(gts, raws, "one_hot", minutes=minutes, name=f"organelles_{variant}",
                     seed=seed, classes=CLASSES, instance_classes=["mitochondrion"],
                     measure=measure,
                     validate=[("heldout", paths["validate/raw"], paths["validate/gt"])])
    if variant == "partial":  # the crop's organelle and the membranes; the rest unknown
        train = [attr.evolve(d, annotated=[k for k in CLASSES if k not in (UNANNOTATED[c], OTHER)])
                 for d, c in zip(rc.datasplit_config.train, "ab")]
        rc = attr.evolve(rc, datasplit_config=attr.evolve(rc.datasplit_config, train=train))
    return rc


def score_best(run_dir, paths) -> dict:
    """The checkpoint and per-class settings ``dacapo apply`` takes (each class at its own
    best setting, at the checkpoint where they score best together): their CellMap criteria
    from the validation rows, and for the mitochondria F1 / AP at IoU 0.5 of that setting's
    written objects."""
    from dacapo.io.arrays import open_array
    from dacapo.ops.object_matching import object_matching
    from dacapo.runs.class_parameters import best_joined_iteration

    rows = run_dir.validation_scores()
    overall = {}
    for r in rows:
        if r["criterion"] == "overall_score":
            key = r["iteration"]
            overall[key] = max(overall.get(key, -1.0), r["value"])
    it = best_joined_iteration(run_dir, run_dir.load_config().task_config.build())
    out: dict = {"iteration": it, "overall_score_one_setting": overall[it],
                 "iteration_one_setting": max(overall, key=overall.get)}
    per_set: dict = {}
    for r in rows:
        if r["iteration"] == it:
            per_set.setdefault(r["parameters"]["id"], {})[r["criterion"]] = r["value"]
    for name in CLASSES:
        pid = max(per_set, key=lambda i: per_set[i].get(f"{name}__score", -1.0))
        best = per_set[pid]
        out[name] = {k.split("__", 1)[1]: round(v, 4) for k, v in best.items()
                     if k.startswith(f"{name}__") and v == v}
        out[name]["setting"] = rows and next(
            r["parameters"].get(name) for r in rows if r["iteration"] == it
            and r["parameters"]["id"] == pid)
        if name == "mitochondrion":
            seg = open_array(str(run_dir.predictions / f"{it:08d}" / "heldout.zarr"
                                 / f"segmentation_{pid}"), "segmentation")
            gt_arr = open_array(paths["validate/gt"], "gt")
            roi = seg.roi.intersect(gt_arr.roi)
            k = CLASSES.index(name)
            objects = np.asarray(seg.to_ndarray(roi))[k]
            import cc3d

            truth = cc3d.connected_components(
                (np.asarray(gt_arr.to_ndarray(roi)) == k).astype(np.uint8), connectivity=6)
            m = object_matching(objects, truth, thresholds=(0.5,))
            out[name].update(f1_50=round(m["f1_50"], 4), ap_50=round(m["ap_50"], 4))
    inst = out["mitochondrion"].get("combined_score", 0.0)
    sem = [out[n].get("iou", 0.0) for n in CLASSES if n != "mitochondrion"]
    out["overall_per_class_best"] = round(float(np.sqrt(inst * np.mean(sem))), 4)
    return out


def otsu(paths) -> dict:
    from skimage.filters import threshold_otsu

    from dacapo.io.arrays import open_array
    from dacapo.ops.cellmap_metrics import score_semantic

    gt_arr = open_array(paths["validate/gt"], "gt")
    raw = np.asarray(open_array(paths["raw"], "raw").to_ndarray(gt_arr.roi)).astype(np.float32)
    gt = np.asarray(gt_arr.to_ndarray(gt_arr.roi))
    dark = raw <= threshold_otsu(raw)
    return {f"{name}__iou": float(score_semantic(dark, gt == CLASSES.index(name)).iou)
            for name in ("membrane", "mitochondrion")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(data_dir()))
    parser.add_argument("--work", default=str(ROOT / "quality_runs"))
    parser.add_argument("--variants", default="full,partial,naive")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--iterations", type=int, default=0, help="override the plan's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="")
    parser.add_argument("--dice-weight", type=float, default=None,
                        help="override the plan's one-hot dice_weight (an experiment)")
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args(argv)
    import torch

    from dacapo.training.loop import train_run

    torch.set_num_threads(1)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    paths = prepare(Path(args.data), work)
    log_path = work / "organelles_log.jsonl"
    for variant in args.variants.split(","):
        rc = overridden(planned(variant, paths, args.minutes, args.seed), args.iterations,
                        args.tag)
        if args.dice_weight is not None:
            rc = attr.evolve(rc, task_config=attr.evolve(rc.task_config,
                                                         dice_weight=args.dice_weight))
        run_path = work / "runs" / rc.name
        if run_path.exists() and args.fresh:
            shutil.rmtree(run_path)
        load0 = os.getloadavg()[0]
        train_s, run_dir = timed(train_run, rc, work / "runs", progress=False)
        entry = {"variant": variant, "run": rc.name, "minutes": args.minutes,
                 "iterations": rc.num_iterations, "train_s": round(train_s, 1),
                 "load": [round(load0, 2), round(os.getloadavg()[0], 2)],
                 "scores": score_best(run_dir, paths), "otsu": otsu(paths),
                 "time": time.strftime("%Y-%m-%d %H:%M:%S")}
        log_entry(log_path, entry)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
