"""Segmentation quality on real volumes: convert, plan, train, validate, apply, score.

For each dataset of the real volumes (a folder per dataset, named as a key of `DATASETS`,
with TIFF stacks + ``meta.json``; ``--data``, default `_harness.data_dir`: ``$DACAPO_DATA``,
else ``../shared/data`` beside the repository; default ``--datasets``: those present there):

0. the folder is read by `_data.volume`: its raw and labels files, the voxel size (nm) from
   meta.json (the kind's default of `DATASETS` only where meta.json states none, and then
   printed, logged and noted under the table as assumed); a bad folder is one line, exit 2;
1. the TIFFs become zarr arrays (``dacapo convert``'s code; under ``--work``, default
   `_harness.work_dir`: ``quality_runs``, or a folder of its own for another data folder):
   the whole raw and labels, the training part (all but the last ``holdout`` fraction of the
   z-slices: 15 of 50, 30 of 100, 5 of 20, 16 of 64 on ours) and the held-out ground truth
   (those last z-slices; its raw is that slab and up to ``context_z`` slices before it, so
   that context comes from real raw where it exists; held-out labels are never trained on);
2. a run config: ``--recipe planned`` (default) from `dacapo.planning.planner.plan_run` with the CPU
   budget ``--minutes`` per dataset; ``--recipe hand`` the hand-written configs of the
   BEFORE figures (examples-like UNets, raw divided by the dtype maximum);
3. training (``dacapo train``'s `train_run`), validating every ``validation_interval``;
4. the checkpoint and post-processing parameters that are best by the task's main criterion
   on the held-out part are applied to the whole volume (``dacapo apply``'s `apply_run`);
   the held-out part of that output is scored again (it must equal the validation score);
5. baselines on the same held-out voxels: Otsu's threshold of the raw (semantic tasks, the
   better polarity) and a seeded watershed on the predicted boundaries (instances:
   boundary = 1 - mean nearest-neighbour affinity; seeds = maxima of its distance transform);
6. ``docs/quality.md`` (``--out``): one row per dataset, and ``quality_log.jsonl`` in the
   work folder with every measurement.

Deterministic given ``--seed`` (training is deterministic given the seed and the thread
count; wall times vary with the load, which is printed). ``make bench-quality`` runs it.

Run: ``.venv/bin/python benchmarks/quality.py [--minutes 8] [--datasets a,b] [--recipe hand]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import _data
import attr
import numpy as np
from _harness import ROOT, data_dir, log_entry, timed, work_dir

from dacapo.io.arrays import open_array

DEFAULT_DATA = data_dir()

#: per dataset kind (its folder's name): task kind, GT preparation, the held-out fraction of the
#: z-slices (the last ones), the most slices of real raw context before the held-out slab, and
#: the voxel size (nm, z y x) taken only when meta.json states none (then said: "assumed";
#: lm_cells_3d's source states none, its meta.json names PlantSeg's ovule data of this kind).
#: The files, shape and voxel size come from the folder (`resolve`).
DATASETS = {
    "fibsem_neurons": {
        "task": "affinities", "gt": "instances", "holdout": 0.3, "context_z": 16,
        "voxel_size": (10, 10, 10),
    },
    "lm_nuclei": {
        "task": "distance", "gt": "mask", "holdout": 0.3, "context_z": 16,
        "voxel_size": (284, 127, 127),
    },
    "sstem_membranes": {
        "task": "one_hot", "gt": "classes255", "holdout": 0.25, "context_z": 2,
        "voxel_size": (50, 4, 4),
    },
    "lm_cells_3d": {
        "task": "affinities", "gt": "instances", "holdout": 0.25, "context_z": 16,
        "voxel_size": (235, 150, 150),
    },
}

#: the score that decides, per task kind: (criterion, higher is better, target)
MAIN = {
    "affinities": ("voi", False, 0.8),
    "distance": ("nucleus__dice", True, 0.9),
    "inner_distance": ("nucleus__dice", True, 0.9),
    "one_hot": ("interior__iou", True, 0.90),
}
SHOWN = {
    "affinities": ["voi", "voi_split", "voi_merge", "adapted_rand_error", "f1"],
    "distance": ["nucleus__dice", "nucleus__jaccard"],
    "inner_distance": ["nucleus__dice", "nucleus__jaccard"],
    "one_hot": ["interior__iou", "interior__dice", "mean_iou"],
}


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------


def resolve(name: str, data_dir: Path) -> _data.Volume:
    """The volume of dataset ``name`` in the data folder ``data_dir`` (`_data.volume`, with
    the kind's default voxel size); `_data.DataError` for a bad folder."""
    return _data.volume(Path(data_dir) / name, default_voxel=DATASETS[name]["voxel_size"])


def prepare_data(name: str, data_dir: Path, work: Path) -> dict[str, str]:
    """Zarr arrays of dataset ``name`` under ``work/<name>.zarr`` (kept when made from the
    same files and split)."""
    from funlib.geometry import Coordinate
    from funlib.persistence import open_ds, prepare_ds

    from dacapo.tools.convert import convert_tiff

    spec = DATASETS[name]
    vol = resolve(name, data_dir)
    holdout = _data.split(vol, spec["holdout"])
    _data.tell(name, vol.notes)
    container = work / f"{name}.zarr"
    paths = {k: f"{container}/{k}" for k in
             ("raw", "labels", "train/raw", "train/gt", "validate/raw", "validate/gt", "gt")}
    stamp = {**vol.stamp(), "holdout": holdout, "context_z": spec["context_z"],
             "gt": spec["gt"]}
    if _data.is_prepared(container, stamp):
        return paths
    if container.exists():
        shutil.rmtree(container)
    vs = Coordinate(vol.grid_voxel)
    raw = convert_tiff(vol.raw, paths["raw"], list(vs))
    labels = convert_tiff(vol.labels, paths["labels"], list(vs))
    lab = np.asarray(labels[labels.roi])
    if spec["gt"] == "mask":
        gt = (lab > 0).astype(np.uint8)
    elif spec["gt"] == "classes255":
        gt = (lab > 0).astype(np.uint8)  # 0 membrane, 1 interior
    else:
        gt = lab.astype(np.uint64)
    z_split = gt.shape[0] - holdout
    raw_data = np.asarray(raw[raw.roi])

    def write(key: str, data: np.ndarray, z0: int) -> None:
        arr = prepare_ds(paths[key], shape=data.shape, offset=Coordinate((z0 * vs[0], 0, 0)),
                         voxel_size=vs, axis_names=["z", "y", "x"], units=["nm"] * 3,
                         dtype=data.dtype, chunk_shape=tuple(min(64, s) for s in data.shape),
                         mode="w")
        arr[arr.roi] = data

    write("gt", gt, 0)
    write("train/raw", raw_data[:z_split], 0)
    write("train/gt", gt[:z_split], 0)
    write("validate/gt", gt[z_split:], z_split)
    # validation raw: the held-out slab and up to context_z real slices before it (context)
    z0 = max(0, z_split - spec["context_z"])
    write("validate/raw", raw_data[z0:], z0)
    open_ds(paths["validate/gt"], mode="r")
    _data.mark_prepared(container, stamp)
    return paths


def split_config(paths: dict[str, str]):
    from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig

    return DataSplitConfig(
        train=[DatasetConfig("train", paths["train/raw"], paths["train/gt"])],
        validate=[DatasetConfig("heldout", paths["validate/raw"], paths["validate/gt"])],
    )


# --------------------------------------------------------------------------
# configs
# --------------------------------------------------------------------------


def task_config(kind: str):
    from dacapo.experiments.tasks import (
        AffinitiesTaskConfig,
        DistanceTaskConfig,
        InnerDistanceTaskConfig,
        OneHotTaskConfig,
    )

    if kind == "affinities":
        return AffinitiesTaskConfig(
            name="affinities",
            neighborhood=[(1, 0, 0), (0, 1, 0), (0, 0, 1), (3, 0, 0), (0, 3, 0), (0, 0, 3)],
            lsds=True, num_lsd_voxels=3, downsample_lsds=2,
        )
    if kind == "distance":
        return DistanceTaskConfig(name="distance", channels=["nucleus"], scale_factor=1000,
                                  clip_distance=2000, tol_distance=500)
    if kind == "inner_distance":
        return InnerDistanceTaskConfig(name="inner_distance", channels=["nucleus"],
                                       scale_factor=1000, clip_distance=2000, tol_distance=500)
    if kind == "one_hot":
        return OneHotTaskConfig(name="one_hot", classes=["membrane", "interior"])
    raise ValueError(f"task kind {kind!r} unknown")


def hand_config(name: str, paths: dict[str, str], iterations: int, seed: int):
    """The BEFORE configs: what a user copies from ``examples/`` and adapts by hand."""
    from dacapo.experiments.architectures import CNNectomeUNetConfig
    from dacapo.experiments.run_config import RunConfig, TrainerConfig

    kind = DATASETS[name]["task"]
    if name == "sstem_membranes":
        arch = CNNectomeUNetConfig(
            name="unet2d", input_shape=(1, 124, 124), eval_shape_increase=(0, 128, 128),
            fmaps_in=1, fmaps_out=12, num_fmaps=12, fmap_inc_factor=2,
            downsample_factors=[(1, 2, 2), (1, 2, 2)],
            kernel_size_down=[[(1, 3, 3)] * 2] * 3, kernel_size_up=[[(1, 3, 3)] * 2] * 2,
        )
    else:
        arch = CNNectomeUNetConfig(
            name="unet", input_shape=(24, 64, 64), eval_shape_increase=(8, 32, 32),
            fmaps_in=1, fmaps_out=12, num_fmaps=12, fmap_inc_factor=2,
            downsample_factors=[(1, 2, 2), (2, 2, 2)],
            kernel_size_down=[[(1, 3, 3)] * 2, [(3, 3, 3)] * 2, [(3, 3, 3)] * 2],
            kernel_size_up=[[(1, 3, 3)] * 2, [(3, 3, 3)] * 2],
        )
    return RunConfig(
        name=f"hand_{name}", task_config=task_config(kind), architecture_config=arch,
        datasplit_config=split_config(paths),
        trainer_config=TrainerConfig(batch_size=2, learning_rate=5e-4, num_data_workers=1),
        num_iterations=iterations, validation_interval=max(1, iterations // 4),
        checkpoint_interval=max(1, iterations // 4), seed=seed,
    )


def planned_config(name: str, paths: dict[str, str], minutes: float, seed: int,
                   num_fmaps: int | None = None):
    from dacapo.planning.planner import plan_run
    from dacapo.training.step_timer import measure_step

    kind = DATASETS[name]["task"]
    names = {"classes": ["membrane", "interior"]} if kind == "one_hot" else {"channel": "nucleus"}
    rc, _text = plan_run([paths["train/gt"]], [paths["train/raw"]], kind, minutes=minutes,
                         name=f"planned_{name}", seed=seed, num_fmaps=num_fmaps, **names, measure=measure_step,
                         validate=[("heldout", paths["validate/raw"], paths["validate/gt"])])
    return rc


# --------------------------------------------------------------------------
# scores
# --------------------------------------------------------------------------


def _canonical(criterion: str, kind: str) -> str:
    """Criterion names of any channel/class naming as the table's: the first distance
    channel is ``nucleus``, the second one-hot class is ``interior``."""
    if kind in ("distance", "inner_distance") and "__" in criterion:
        return "nucleus__" + criterion.split("__", 1)[1]
    if kind == "one_hot" and "__" in criterion:
        return criterion
    return criterion


def best_row(run_dir, kind: str) -> dict:
    """Every shown metric at the (iteration, parameters) best by the main criterion."""
    crit, hib, _ = MAIN[kind]
    rows = run_dir.validation_scores()
    if kind == "one_hot":  # the second class is the foreground, whatever its name
        classes = run_dir.load_config().task_config.classes
        names = {classes[1]: "interior", classes[0]: "membrane"}
        for r in rows:
            head, _, tail = r["criterion"].partition("__")
            if tail and head in names:
                r["criterion"] = f"{names[head]}__{tail}"
    else:
        for r in rows:
            r["criterion"] = _canonical(r["criterion"], kind)
    cands = [r for r in rows if r["criterion"] == crit and not math.isnan(r["value"])]
    if not cands:
        return {}
    top = (max if hib else min)(cands, key=lambda r: r["value"])
    key = (top["iteration"], json.dumps(top["parameters"], sort_keys=True))
    out = {"iteration": top["iteration"], "parameters": top["parameters"],
           "gt_fraction": top.get("gt_fraction", float("nan"))}
    for r in rows:
        if (r["iteration"], json.dumps(r["parameters"], sort_keys=True)) == key:
            out[r["criterion"]] = r["value"]
    # the last validation, same criterion (no checkpoint selection on the held-out part)
    last = max(r["iteration"] for r in rows)
    lasts = [r for r in cands if r["iteration"] == last]
    out["last_iteration"] = last
    out["last_" + crit] = (max if hib else min)(r["value"] for r in lasts) if lasts else None
    return out


def crop(array, roi) -> np.ndarray:
    return np.asarray(array.to_ndarray(roi, fill_value=0))


def same_voxels(work: Path, before: dict, after: dict, gt_path: str, kind: str) -> dict:
    """Main scores of the BEFORE and AFTER applied outputs on the held-out voxels both
    cover (the models' contexts differ, so their scored parts do)."""
    from funlib.persistence import open_ds

    segs = [open_array(str(work / "apply" / f"{r['run']}.zarr" / "seg"), "segmentation")
            for r in (before, after)]
    gt = open_ds(gt_path, mode="r")
    roi = segs[0].roi.intersect(segs[1].roi).intersect(gt.roi)
    g = crop(gt, roi)
    out = {"fraction": float(np.prod(roi.shape) / np.prod(gt.roi.shape))}
    for name, seg in zip(("before", "after"), segs):
        x = crop(seg, roi)
        x = x[0] if x.ndim > g.ndim else x
        if kind == "affinities":
            from dacapo.ops.instance_metrics import instance_metrics

            m = instance_metrics(x.astype(np.uint64), g.astype(np.uint64))
            out[name] = {"voi": float(m["voi"]), "adapted_rand_error": float(m["adapted_rand_error"])}
        else:
            from dacapo.ops.multiclass_metrics import multiclass_metrics

            m, _ = multiclass_metrics((x > 0).astype(np.int64), (g > 0).astype(np.int64), 2)
            out[name] = {"iou": float(m["iou"][1]), "dice": float(m["dice"][1])}
    return out


def otsu_baseline(raw_path: str, gt_path: str, kind: str) -> dict:
    """Otsu threshold of the raw on the held-out part: Dice/IoU of the better polarity."""
    from funlib.persistence import open_ds
    from skimage.filters import threshold_otsu

    from dacapo.ops.multiclass_metrics import multiclass_metrics

    raw = open_array(raw_path, "raw")  # `convert_tiff` writes OME-NGFF images
    gt = open_ds(gt_path, mode="r")
    r = crop(raw, gt.roi).astype(np.float32)
    g = crop(gt, gt.roi).astype(np.int64)
    t = threshold_otsu(r)
    best = {}
    for pol, seg in (("bright", r > t), ("dark", r <= t)):
        m, _ = multiclass_metrics(seg.astype(np.int64), g, 2)
        iou, dice = float(m["iou"][1]), float(m["dice"][1])
        if not best or iou > best["iou"]:
            best = {"iou": iou, "dice": dice, "polarity": pol, "threshold": float(t)}
    return best


def watershed_baseline(prediction_path: str, gt_path: str) -> dict:
    """Seeded watershed of the predicted boundaries (1 - mean of the 3 nearest affinities),
    seeds at maxima of the distance to boundary > t; best VOI over t in (0.3, 0.5, 0.7)."""
    from funlib.persistence import open_ds
    from scipy import ndimage
    from skimage.segmentation import watershed

    from dacapo.ops.instance_metrics import instance_metrics

    pred = open_array(prediction_path, "prediction")
    gt = open_ds(gt_path, mode="r")
    roi = pred.roi.intersect(gt.roi)
    affs = crop(pred, roi)[:3]
    g = crop(gt, roi).astype(np.uint64)
    boundary = 1.0 - affs.mean(axis=0)
    best: dict = {}
    for t in (0.3, 0.5, 0.7):
        inside = boundary < t
        dist = ndimage.distance_transform_edt(inside)
        maxima = (dist == ndimage.maximum_filter(dist, size=5)) & inside
        seeds, _ = ndimage.label(maxima)
        seg = watershed(boundary, seeds).astype(np.uint64)
        m = instance_metrics(seg, g)
        voi, are = float(m["voi"]), float(m["adapted_rand_error"])
        if not best or voi < best["voi"]:
            best = {"voi": voi, "adapted_rand_error": are, "threshold": t}
    return best


def score_applied(seg_path: str, gt_path: str, kind: str) -> dict:
    """The main scores of the applied whole-volume output on the held-out part."""
    from funlib.persistence import open_ds

    seg = open_array(seg_path, "segmentation")  # a zarr array or an OME-NGFF image
    gt = open_ds(gt_path, mode="r")
    roi = seg.roi.intersect(gt.roi)
    s, g = crop(seg, roi), crop(gt, roi)
    if s.ndim > g.ndim:
        s = s[0]
    if kind == "affinities":
        from dacapo.ops.instance_metrics import instance_metrics

        m = instance_metrics(s.astype(np.uint64), g.astype(np.uint64))
        return {"voi": float(m["voi"]), "adapted_rand_error": float(m["adapted_rand_error"]),
                "scored_fraction": float(np.prod(roi.shape) / np.prod(gt.roi.shape))}
    from dacapo.ops.multiclass_metrics import multiclass_metrics

    m, _ = multiclass_metrics((s > 0).astype(np.int64), (g > 0).astype(np.int64), 2)
    return {"iou": float(m["iou"][1]), "dice": float(m["dice"][1]),
            "scored_fraction": float(np.prod(roi.shape) / np.prod(gt.roi.shape))}


# --------------------------------------------------------------------------
# one dataset
# --------------------------------------------------------------------------


def config_summary(rc) -> str:
    a = rc.architecture_config
    t = rc.trainer_config
    levels = "/".join("x".join(str(v) for v in f) for f in a.downsample_factors) or "-"
    kd = a.kernel_size_down or []
    two_d = sum(1 for lvl in kd if all(k[0] == 1 for k in lvl))
    sched = getattr(t, "lr_schedule", "constant")
    n = getattr(rc, "normalization", None)
    norm = "dtype max" if n is None or n.method == "dtype_max" else n.method
    return (f"UNet in {tuple(a.input_shape)} fmaps {a.num_fmaps}x{a.fmap_inc_factor} "
            f"down {levels} ({two_d} 2D levels); batch {t.batch_size}, lr {t.learning_rate:g} "
            f"{sched}; norm {norm}; {rc.num_iterations} it")


def overridden(rc, iterations: int = 0, tag: str = ""):
    """``rc`` with ``--iterations`` (4 validations and checkpoints) and ``--tag`` (a run
    name suffix) applied; unchanged for 0 / ""."""
    if iterations:
        n = iterations
        rc = attr.evolve(rc, num_iterations=n, validation_interval=max(1, n // 4),
                         checkpoint_interval=max(1, n // 4))
    if tag:
        rc = attr.evolve(rc, name=f"{rc.name}_{tag}")
    return rc


def run_dataset(name: str, args, work: Path, log) -> dict:
    from dacapo.pipeline.apply import apply_run
    from dacapo.pipeline.predict_options import PredictOptions
    from dacapo.training.loop import train_run

    spec = DATASETS[name]
    kind = spec["task"]
    vol = resolve(name, Path(args.data))
    paths = prepare_data(name, Path(args.data), work)
    if args.recipe == "hand":
        rc = hand_config(name, paths, args.iterations or 400, args.seed)
    else:
        rc = planned_config(name, paths, args.minutes, args.seed)
    rc = overridden(rc, args.iterations, args.tag)
    runs = work / "runs"
    run_path = runs / rc.name
    if run_path.exists() and args.fresh:
        shutil.rmtree(run_path)
    load0 = os.getloadavg()[0]
    train_s, run_dir = timed(train_run, rc, runs, progress=False)
    stats = run_dir.training_stats()
    train_only = float(stats[-1]["time"]) if stats else float("nan")
    best = best_row(run_dir, kind)
    out = work / "apply" / f"{rc.name}.zarr" / "seg"
    if out.parent.exists():
        shutil.rmtree(out.parent)
    # the checkpoint and parameters best by the criterion this table reports (a one-hot
    # task's own main criterion is mean_iou over both classes)
    apply_s, _ = timed(apply_run, run_dir.path, paths["raw"], out,
                       PredictOptions(num_workers=1, progress=False), criterion=MAIN[kind][0])
    applied = score_applied(str(out), paths["validate/gt"], kind)
    baseline: dict
    if kind == "affinities":
        pred = run_dir.predictions / f"{best['iteration']:08d}" / "heldout.zarr" / "prediction"
        baseline = watershed_baseline(str(pred), paths["validate/gt"])
    else:
        baseline = otsu_baseline(paths["raw"], paths["validate/gt"], kind)
    result = {
        "dataset": name, "task": type(rc.task_config).__name__, "run": rc.name,
        "recipe": args.recipe, "seed": args.seed, "config": config_summary(rc),
        "train_s": round(train_s, 1), "train_loop_s": round(train_only, 1),
        "apply_s": round(apply_s, 1), "load_start": round(load0, 2),
        "load_end": round(os.getloadavg()[0], 2), "best": best, "applied": applied,
        "baseline": baseline, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "files": [str(vol.raw), str(vol.labels)], "voxel_size_nm": list(vol.voxel_size),
        "holdout_slices": _data.split(vol, spec["holdout"]),
    }
    if vol.voxel_assumed:
        result["voxel_size_assumed"] = vol.voxel_assumed
    log(result)
    return result


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------


def _f(v, digits=3) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def table(results: list[dict]) -> str:
    lines = [
        "| dataset | task | config | train time | held-out score (best checkpoint) | last checkpoint | applied, held-out part | baseline | target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        kind = DATASETS[r["dataset"]]["task"]
        crit, hib, target = MAIN[kind]
        b = r["best"]
        shown = ", ".join(f"{c} {_f(b.get(c))}" for c in SHOWN[kind] if c in b)
        if kind == "affinities":
            base = (f"watershed on predicted boundaries: VOI {_f(r['baseline'].get('voi'))}, "
                    f"ARAND {_f(r['baseline'].get('adapted_rand_error'))}")
            app = (f"VOI {_f(r['applied'].get('voi'))}, ARAND "
                   f"{_f(r['applied'].get('adapted_rand_error'))}")
            met = b.get("voi", 9) <= 0.8 and b.get("adapted_rand_error", 9) <= 0.1
            tgt = "VOI ≤ 0.8, ARAND ≤ 0.1"
        else:
            base = (f"Otsu ({r['baseline'].get('polarity')}): IoU {_f(r['baseline'].get('iou'))}, "
                    f"Dice {_f(r['baseline'].get('dice'))}")
            app = f"IoU {_f(r['applied'].get('iou'))}, Dice {_f(r['applied'].get('dice'))}"
            met = (b.get(crit) or 0) >= target
            tgt = f"{crit} ≥ {target}"
        app += f" ({100 * r['applied'].get('scored_fraction', float('nan')):.0f} % of it scored)"
        lines.append(
            f"| {r['dataset']} | {r['task']} | {r['config']} | {r['train_s'] / 60:.1f} min "
            f"(load {r['load_start']}–{r['load_end']}) | {shown} (it {b.get('iteration')}, "
            f"{_params(b.get('parameters'))}) | {crit} {_f(b.get('last_' + crit))} "
            f"(it {b.get('last_iteration')}) | {app} | {base} | {tgt}: "
            f"{'met' if met else 'missed'} |"
        )
    return "\n".join(lines)


def _params(p) -> str:
    if not p:
        return "-"
    return ", ".join(f"{k}={v}" for k, v in p.items() if k not in ("type", "id")) or "-"


def notes(results: list[dict]) -> str:
    """A line per result whose voxel size was assumed (meta.json states none), else ""."""
    lines = [f"- {r['dataset']}: voxel size assumed, {' × '.join(f'{v:g}' for v in r['voxel_size_nm'])} "
             f"nm ({r['voxel_size_assumed']})" for r in results if r.get("voxel_size_assumed")]
    return "\n".join(lines)


def chosen(names: str | None, data: Path, from_log: bool) -> list[str]:
    """The datasets to run: ``--datasets`` (each checked), else those of `DATASETS` whose
    folder is in ``data`` (the others named in a line); `_data.DataError` for a bad folder
    (each is read before any training)."""
    if names:
        picked = names.split(",")
        unknown = [n for n in picked if n not in DATASETS]
        if unknown:
            raise _data.DataError(data / unknown[0], f"not a dataset of quality.py (its kinds: "
                                                     f"{', '.join(DATASETS)})")
    elif from_log:
        picked = list(DATASETS)
    else:
        picked = [n for n in DATASETS if (data / n).is_dir()]
        absent = [n for n in DATASETS if n not in picked]
        if not picked:
            raise _data.DataError(data, f"holds none of the dataset folders {', '.join(DATASETS)}")
        if absent:
            print(f"quality: {data} has no folder {', '.join(absent)}: skipped", flush=True)
    if not from_log:
        for n in picked:
            _data.split(resolve(n, data), DATASETS[n]["holdout"])
    return picked


@_data.exit_2
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--work", default=None,
                        help="default: quality_runs, or a folder in it of its own for another "
                        "--data (`_harness.work_dir`)")
    parser.add_argument("--datasets", default=None,
                        help="comma-separated; default: those of " + ", ".join(DATASETS)
                        + " whose folder is in --data")
    parser.add_argument("--recipe", choices=["planned", "hand"], default="planned")
    parser.add_argument("--minutes", type=float, default=8.0,
                        help="training budget per dataset (CPU minutes on this machine)")
    parser.add_argument("--iterations", type=int, default=0, help="override the plan's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="", help="suffix of the run names")
    parser.add_argument("--fresh", action="store_true", help="retrain existing runs")
    parser.add_argument("--out", default=None,
                        help="the doc to write (default: docs/quality.md for our volumes, "
                        "quality.md in the work folder for another --data)")
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--from-log", action="store_true",
                        help="write the doc from the runs already in quality_log.jsonl "
                             "(the last entry of each run name; no training)")
    parser.add_argument("--tag-of", default="", help="with --from-log: DATASET=TAG,... "
                        "(a tag per dataset instead of --tag)")
    parser.add_argument("--before-tag-of", default="", help="with --from-log: DATASET=TAG,...")
    parser.add_argument("--before-tag", default="before",
                        help="with --from-log: tag of the hand-config runs shown as BEFORE")
    args = parser.parse_args(argv)
    args.datasets = ",".join(chosen(args.datasets, Path(args.data), args.from_log))
    args.work = args.work or str(work_dir(args.data))
    ours = work_dir(args.data) == ROOT / "quality_runs"
    args.out = args.out or str(ROOT / "docs" / "quality.md" if ours
                               else Path(args.work) / "quality.md")
    import torch

    torch.set_num_threads(1)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / "quality_log.jsonl"

    def log(entry: dict) -> None:
        log_entry(log_path, entry)

    t0 = time.perf_counter()
    if args.from_log:
        entries = {}
        for line in log_path.read_text().splitlines():
            entry = json.loads(line)
            entries[entry["run"]] = entry
        prefix = "hand" if args.recipe == "hand" else "planned"
        tags = dict(item.split("=") for item in args.tag_of.split(",") if item)

        def run_name(n: str) -> str:
            tag = tags.get(n, args.tag)
            return f"{prefix}_{n}_{tag}" if tag else f"{prefix}_{n}"

        results = [entries[run_name(n)] for n in args.datasets.split(",") if run_name(n) in entries]
        for r in results:  # scores again from the run directory (criterion names)
            from dacapo.runs.run_dir import RunDir

            r["best"] = best_row(RunDir(work / "runs" / r["run"]), DATASETS[r["dataset"]]["task"])
        btags = dict(item.split("=") for item in args.before_tag_of.split(",") if item)
        before = [entries[f"hand_{n}_{btags.get(n, args.before_tag)}"]
                  for n in args.datasets.split(",")
                  if f"hand_{n}_{btags.get(n, args.before_tag)}" in entries]
    else:
        results = [run_dataset(name, args, work, log) for name in args.datasets.split(",")]
        before = []
    text = table(results)
    if notes(results):
        text += "\n\n" + notes(results)
    pairs = []
    for b in before:
        a = [r for r in results if r["dataset"] == b["dataset"]]
        if a:
            kind = DATASETS[b["dataset"]]["task"]
            gt = str(work / f"{b['dataset']}.zarr" / "validate" / "gt")
            c = same_voxels(work, b, a[0], gt, kind)
            keys = ("voi", "adapted_rand_error") if kind == "affinities" else ("iou", "dice")
            pairs.append(f"| {b['dataset']} | {100 * c['fraction']:.0f} % | "
                         + " | ".join(f"{k} {_f(c['before'][k])} → {_f(c['after'][k])}"
                                      for k in keys) + " |")
    if pairs:
        text += ("\n\nBEFORE → AFTER on the same held-out voxels (those both applied outputs "
                 "cover):\n\n| dataset | held-out voxels compared | score | score |\n"
                 "|---|---|---|---|\n" + "\n".join(pairs))
    if before:
        text += "\n\nBEFORE (hand-written configs, raw / dtype maximum, constant learning rate, " \
                "today's augmentations):\n\n" + table(before)
    print(text)
    if not args.no_doc:
        total = sum(r["train_s"] + r["apply_s"] for r in results) if args.from_log else \
            time.perf_counter() - t0
        write_doc(Path(args.out), results, text, args, total)
    return 0


#: the doc's text from this line on is kept when the tables are written again
KEEP_MARKER = "<!-- kept by benchmarks/quality.py: analysis below -->"


def write_doc(path: Path, results: list[dict], text: str, args, total_s: float) -> None:
    ours = Path(args.data).resolve() == (ROOT.parent / "shared" / "data").resolve()
    shown = "../shared/data/" if ours else str(args.data)
    head = f"""# Quality on real data

`make bench-quality` (`benchmarks/quality.py --recipe {args.recipe} --minutes {args.minutes:g}
--seed {args.seed}`) on the volumes of `{shown}`: for each, the TIFFs are converted to
zarr, the last z-slices are held out (their labels are never trained on; their raw is the
held-out slab and up to 16 slices before it, 2 for ssTEM sections, so context comes from real
raw where it exists), a run config is planned by `dacapo plan` for a CPU budget of {args.minutes:g} min
of training, trained, validated on the held-out part during training, and the checkpoint +
post-processing parameters best by the task's main criterion are applied to the whole
volume. Baselines on the same held-out voxels: Otsu's threshold of the raw (semantic), a
seeded watershed on the predicted boundaries (instances). Training + apply time of the runs
shown: {total_s / 60:.0f} min on 2 shared CPU cores (machine load in the table).

"""
    kept = ""
    if path.is_file() and KEEP_MARKER in path.read_text():  # hand-written analysis below it
        kept = "\n" + path.read_text()[path.read_text().index(KEEP_MARKER):]
    path.write_text(head + text + "\n" + kept)


if __name__ == "__main__":
    sys.exit(main())
