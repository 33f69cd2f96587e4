"""Organelles on real ssTEM: one model for all classes, full and partial annotation.

The volume ``sstem_organelles`` (``--dataset``; read by `_data.volume`: its raw and labels
TIFFs, the voxel size and the class names (``classes``) from meta.json; a label value that
is no class is "not annotated". Ours: 12 sections × 1024², 50 × 4.6 × 4.6 nm, converted on
a grid of whole nm, 50 × 4 × 4; classes 1 membrane, 2 glia/extracellular, 3 mitochondrion,
4 synapse, 5 cytoplasm, every voxel labelled) is split by section: the last quarter of the
sections is held out (ours: sections 0..8 train, 9..11 are held out; their labels are
never trained on; their raw comes with 2 sections of context before them). The training
sections are two crops, the halves y < Y/2 and y >= Y/2. Variants, same plan otherwise:

- ``full``: both crops annotate every class;
- ``partial``: mitochondria annotated only in crop A, synapses only in crop B, membranes
  and glia (the other classes) in both, cytoplasm (the "everything else" an annotator does
  not paint) in none: the datasplit says so with ``annotated``; a voxel of an unannotated
  class is unknown (the loss is the likelihood of "one of the unannotated classes"). (With
  cytoplasm annotated too, the one unannotated class of a crop is implied wherever no
  other class is, and the run equals full annotation bit for bit: a check of the loss, not
  an experiment);
- ``naive``: the same crops, but the unannotated class's voxels are called cytoplasm (the
  "everything else" class), as a tool without partial annotations would have to.

The roles are read from the class names (`_data.partial_roles`: one class mitochondri*, the
instance class, one synap*, one cytoplasm / background / other); for a volume whose classes
do not name them, ``partial`` and ``naive`` stop with one line (exit 2) before any training,
and ``full`` runs (without an instance class when none is named mitochondri*).

Each run is planned by `dacapo.planning.planner.plan_run` (``--task one_hot --classes``)
for ``--minutes`` of CPU, trained, validated on the held-out sections; the best checkpoint
and parameters by the mean IoU are scored again on the held-out sections with the CellMap
metrics (`dacapo.ops.cellmap_metrics`): IoU per class, mitochondria as instances
(connected components) F1@0.5, Hausdorff score, combined; the overall score. Baseline:
Otsu's threshold of the raw for the mitochondria (dark) and the membranes (dark).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/quality_organelles.py --variants
full,partial,naive --minutes 20``; results go to ``organelles_log.jsonl`` in the work
folder (``quality_runs`` for our volumes, `_harness.work_dir`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import _data
import attr
import numpy as np
from _harness import data_dir, log_entry, timed, work_dir
from quality import overridden

NAME = "sstem_organelles"
#: this kind's voxel size (nm, z y x) and classes (label value -> name), taken only where
#: meta.json states none (and then said: assumed)
VOXEL = (50, 4.6, 4.6)
CLASSES = {1: "membrane", 2: "glia_extracellular", 3: "mitochondrion", 4: "synapse",
           5: "cytoplasm"}
#: the held-out fraction of the sections (the last ones: 3 of our 12), sections of context
HOLDOUT = 0.25
CONTEXT = 2
#: the GT's value for a voxel of a label value that is no class (not annotated)
UNKNOWN = 255
VARIANTS = ("full", "partial", "naive")


def resolve(data: Path, name: str = NAME) -> tuple[_data.Volume, dict, list[str]]:
    """The volume ``data/name``, its layout and what to say about it (assumptions).

    The layout: ``classes`` (names, in the GT's order: GT value i is ``classes[i]``),
    ``values`` (their label values), ``instance`` (the class segmented as objects, or None),
    ``partial`` (`_data.PartialRoles` as a dict, or None) and ``no_partial`` (why not: the
    path and problem of a `_data.DataError`, or None); the voxel size and whether it and
    the classes are assumed."""
    vol = _data.volume(Path(data) / name, default_voxel=VOXEL)
    notes = list(vol.notes)
    classes = vol.classes
    if classes is None:
        classes = CLASSES
        notes.append("classes assumed " + ", ".join(f"{k} {v}" for k, v in classes.items())
                     + " (meta.json states none)")
    if len(classes) >= UNKNOWN:
        raise _data.DataError(vol.folder / "meta.json", f"{len(classes)} classes: at most "
                                                        f"{UNKNOWN - 1}")
    names = list(classes.values())
    try:
        partial, no_partial = asdict(_data.partial_roles(names, vol.folder / "meta.json")), None
    except _data.DataError as e:
        partial, no_partial = None, [str(e.path), e.problem]
    layout = {"classes": names, "values": list(classes), "instance": _data.instance_class(names),
              "classes_assumed": vol.classes is None, "partial": partial,
              "no_partial": no_partial,
              "voxel_size_nm": list(vol.voxel_size), "voxel_size_assumed": vol.voxel_assumed}
    return vol, layout, notes


def layout(paths: dict[str, str]) -> dict:
    """The layout `prepare` stored beside the arrays of ``paths`` (see `resolve`)."""
    return json.loads((Path(paths["raw"]).parent / "layout.json").read_text())


def class_indices(ids: np.ndarray, values: list[int], where: Path) -> np.ndarray:
    """The GT of class indices: label value ``values[i]`` -> i, any other `UNKNOWN`."""
    if ids.dtype.kind not in "ui":
        raise _data.DataError(where, f"labels of type {ids.dtype}: class labels are integers")
    gt = np.full(ids.shape, UNKNOWN, np.uint8)
    for i, value in enumerate(values):
        gt[ids == value] = i
    return gt


def prepare(data: Path, work: Path, name: str = NAME) -> dict[str, str]:
    """Zarr arrays under ``work/<name>.zarr`` (kept when made from the same files and
    split) and the layout (`layout`)."""
    import tifffile
    from funlib.geometry import Coordinate
    from funlib.persistence import prepare_ds

    vol, lay, notes = resolve(data, name)
    holdout = _data.split(vol, HOLDOUT)
    _data.tell(name, notes)
    container = work / f"{name}.zarr"
    variants = ("full", "naive") if lay["partial"] else ("full",)
    keys = ["raw", "validate/raw", "validate/gt"] + [
        f"{v}/{c}/{k}" for v in variants for c in "ab" for k in ("raw", "gt")]
    paths = {k: f"{container}/{k}" for k in keys}
    paths.update({f"partial/{c}/{k}": paths[f"full/{c}/{k}"] for c in "ab" for k in ("raw", "gt")})
    stamp = {**vol.stamp(), "holdout": holdout, "context": CONTEXT, "layout": lay}
    if _data.is_prepared(container, stamp) and (container / "layout.json").is_file():
        return paths
    if container.exists():
        shutil.rmtree(container)
    raw = tifffile.imread(vol.raw)
    gt = class_indices(tifffile.imread(vol.labels), lay["values"], vol.labels)
    unknown = float(np.mean(gt == UNKNOWN))
    if unknown:
        _data.tell(name, [f"{100 * unknown:.2f} % of the voxels have a label value that is no "
                          "class: not annotated"])
    z_split = gt.shape[0] - holdout
    vs = Coordinate(vol.grid_voxel)

    def write(key: str, a: np.ndarray, z0: int, y0: int = 0) -> None:
        arr = prepare_ds(paths[key], shape=a.shape, offset=Coordinate((z0, y0, 0)) * vs,
                         voxel_size=vs, axis_names=["z", "y", "x"], units=["nm"] * 3,
                         dtype=a.dtype, chunk_shape=(1, 256, 256), mode="w")
        arr[arr.roi] = a

    write("raw", raw, 0)
    write("validate/gt", gt[z_split:], z_split)
    c0 = max(0, z_split - CONTEXT)
    write("validate/raw", raw[c0:], c0)
    half = gt.shape[1] // 2
    classes = lay["classes"]
    for c, (y0, y1) in {"a": (0, half), "b": (half, gt.shape[1])}.items():
        g = gt[:z_split, y0:y1]
        write(f"full/{c}/raw", raw[:z_split, y0:y1], 0, y0)
        write(f"full/{c}/gt", g, 0, y0)
        if lay["partial"]:
            roles = _data.PartialRoles(**lay["partial"])
            naive = g.copy()
            naive[naive == classes.index(roles.unannotated()[c])] = classes.index(roles.other)
            write(f"naive/{c}/raw", raw[:z_split, y0:y1], 0, y0)
            write(f"naive/{c}/gt", naive, 0, y0)
    (container / "layout.json").write_text(json.dumps(lay, indent=1))
    _data.mark_prepared(container, stamp)
    return paths


def planned(variant: str, paths: dict[str, str], minutes: float, seed: int,
            measure=None):
    """The variant's plan; ``measure`` None (the benchmark's runs): the cost model alone, so
    that every variant trains the same plan; a step timer (`plan_run`'s) otherwise.
    `_data.DataError` for ``partial`` / ``naive`` when the classes name no roles."""
    from dacapo.planning.planner import plan_run

    lay = layout(paths)
    classes = lay["classes"]
    if variant != "full" and lay["no_partial"]:
        raise _data.DataError(*lay["no_partial"])
    gts = [paths[f"{variant}/{c}/gt"] for c in "ab"]
    raws = [paths[f"{variant}/{c}/raw"] for c in "ab"]
    rc, _ = plan_run(gts, raws, "one_hot", minutes=minutes, name=f"organelles_{variant}",
                     seed=seed, classes=classes,
                     instance_classes=[lay["instance"]] if lay["instance"] else None,
                     measure=measure,
                     validate=[("heldout", paths["validate/raw"], paths["validate/gt"])])
    if variant == "partial":  # the crop's organelle and the membranes; the rest unknown
        roles = _data.PartialRoles(**lay["partial"])
        unannotated = roles.unannotated()
        train = [attr.evolve(d, annotated=[k for k in classes
                                           if k not in (unannotated[c], roles.other)])
                 for d, c in zip(rc.datasplit_config.train, "ab")]
        rc = attr.evolve(rc, datasplit_config=attr.evolve(rc.datasplit_config, train=train))
    return rc


def score_best(run_dir, paths) -> dict:
    """The checkpoint and per-class settings ``dacapo apply`` takes (each class at its own
    best setting, at the checkpoint where they score best together): their CellMap criteria
    from the validation rows, and for the instance class (the mitochondria) F1 / AP at IoU
    0.5 of that setting's written objects."""
    from dacapo.io.arrays import open_array
    from dacapo.ops.object_matching import object_matching
    from dacapo.runs.class_parameters import best_joined_iteration

    lay = layout(paths)
    classes, instance = lay["classes"], lay["instance"]
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
    for name in classes:
        pid = max(per_set, key=lambda i: per_set[i].get(f"{name}__score", -1.0))
        best = per_set[pid]
        out[name] = {k.split("__", 1)[1]: round(v, 4) for k, v in best.items()
                     if k.startswith(f"{name}__") and v == v}
        out[name]["setting"] = rows and next(
            r["parameters"].get(name) for r in rows if r["iteration"] == it
            and r["parameters"]["id"] == pid)
        if name == instance:
            seg = open_array(str(run_dir.predictions / f"{it:08d}" / "heldout.zarr"
                                 / f"segmentation_{pid}"), "segmentation")
            gt_arr = open_array(paths["validate/gt"], "gt")
            roi = seg.roi.intersect(gt_arr.roi)
            k = classes.index(name)
            objects = np.asarray(seg.to_ndarray(roi))[k]
            import cc3d

            truth = cc3d.connected_components(
                (np.asarray(gt_arr.to_ndarray(roi)) == k).astype(np.uint8), connectivity=6)
            m = object_matching(objects, truth, thresholds=(0.5,))
            out[name].update(f1_50=round(m["f1_50"], 4), ap_50=round(m["ap_50"], 4))
    sem = [out[n].get("iou", 0.0) for n in classes if n != instance]
    if instance is None:
        out["overall_per_class_best"] = round(float(np.mean(sem)), 4)
    else:
        inst = out[instance].get("combined_score", 0.0)
        out["overall_per_class_best"] = round(float(np.sqrt(inst * np.mean(sem))), 4)
    return out


def otsu(paths) -> dict:
    """IoU of the raw's dark side (below Otsu's threshold) with the membranes (membran*)
    and the instance class, on the held-out sections."""
    from skimage.filters import threshold_otsu

    from dacapo.io.arrays import open_array
    from dacapo.ops.cellmap_metrics import score_semantic

    gt_arr = open_array(paths["validate/gt"], "gt")
    raw = np.asarray(open_array(paths["raw"], "raw").to_ndarray(gt_arr.roi)).astype(np.float32)
    gt = np.asarray(gt_arr.to_ndarray(gt_arr.roi))
    dark = raw <= threshold_otsu(raw)
    lay = layout(paths)
    classes = lay["classes"]
    names = [n for n in classes if n.lower().startswith("membran")][:1]
    names += [lay["instance"]] if lay["instance"] else []
    return {f"{name}__iou": float(score_semantic(dark, gt == classes.index(name)).iou)
            for name in names}


@_data.exit_2
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(data_dir()))
    parser.add_argument("--work", default=None, help="default: `_harness.work_dir` of --data")
    parser.add_argument("--dataset", default=None,
                        help=f"the dataset folder in --data (default: {NAME}; when absent: a "
                        "line, exit 0)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--iterations", type=int, default=0, help="override the plan's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="")
    parser.add_argument("--dice-weight", type=float, default=None,
                        help="override the plan's one-hot dice_weight (an experiment)")
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args(argv)
    if args.dataset is None:
        if not (Path(args.data) / NAME).is_dir():
            print(f"quality_organelles: {args.data} has no folder {NAME}: skipped", flush=True)
            return 0
        args.dataset = NAME
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"--variants: {', '.join(unknown)} unknown; choose from {', '.join(VARIANTS)}")
    # the folder, the split and the classes' roles checked before any conversion or training
    vol, lay, _ = resolve(Path(args.data), args.dataset)
    _data.split(vol, HOLDOUT)
    if lay["no_partial"] and any(v != "full" for v in variants):
        raise _data.DataError(*lay["no_partial"])
    import torch

    from dacapo.training.loop import train_run

    torch.set_num_threads(1)
    work = Path(args.work or work_dir(args.data))
    work.mkdir(parents=True, exist_ok=True)
    paths = prepare(Path(args.data), work, args.dataset)
    log_path = work / "organelles_log.jsonl"
    for variant in variants:
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
        entry = {"dataset": args.dataset, "variant": variant, "run": rc.name,
                 "minutes": args.minutes, "classes": lay["classes"],
                 "voxel_size_nm": lay["voxel_size_nm"],
                 **({"voxel_size_assumed": lay["voxel_size_assumed"]}
                    if lay["voxel_size_assumed"] else {}),
                 **({"classes_assumed": True} if lay["classes_assumed"] else {}),
                 "iterations": rc.num_iterations, "train_s": round(train_s, 1),
                 "load": [round(load0, 2), round(os.getloadavg()[0], 2)],
                 "scores": score_best(run_dir, paths), "otsu": otsu(paths),
                 "time": time.strftime("%Y-%m-%d %H:%M:%S")}
        log_entry(log_path, entry)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
