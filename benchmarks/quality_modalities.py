"""New modalities on real data: 2D fluorescence nuclei and 3D confocal cells, each by the
same planner, against the baseline a user would try first.

- ``lm_nuclei_2d``: the frames (every ``<name>_raw.tif`` with its ``<name>_labels.tif``;
  `_data.collection`: the pixel size from meta.json, else 240 × 240 nm assumed and said;
  ours: six GOWT1 frames) become a collection (``dacapo convert --collection``); ``dacapo
  plan COLLECTION --task inner_distance`` trains on the others and holds out two
  (``--holdout``, default the last two by name: t52 and t72 of ours); each held-out frame is scored
  with the checkpoint and parameters chosen on the *other* one (and, optimistically, on
  itself) by StarDist's object matching (F1, AP = TP / (TP + FP + FN) at IoU 0.5 and over
  0.5:0.95) and pixel Dice. Baseline: Otsu's threshold + distance-transform watershed (the
  scikit-image gallery's recipe).
- ``lm_cells_3d``: `quality.run_dataset` (the last quarter of the slices held out, 16 of
  our 64; the voxel size from meta.json, else 235 × 150 × 150 nm assumed and said, as for
  ours, whose source states none) with the planned affinities +
  fragments + agglomeration; then the mutex watershed on the same prediction; baseline: a
  watershed of the smoothed membrane stain seeded at maxima of the distance to it.

Training wall time is reported beside the plan's ``--minutes`` (the machine's load too).
Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/quality_modalities.py --datasets
lm_nuclei_2d,lm_cells_3d --minutes 20``; results go to ``modalities_log.jsonl`` in the work
folder (``quality_runs`` for our volumes, `_harness.work_dir`). A bad data folder is one
line, exit 2, before any training.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import _data
import attr
import numpy as np
import quality
from _harness import data_dir, log_entry, timed, work_dir

NUCLEI_2D = "lm_nuclei_2d"
#: the 2D nuclei's pixel size (nm, y x) where meta.json states none (then said: assumed)
NUCLEI_2D_VOXEL = (240, 240)
#: the 2D frames held out by default: the last ones by name
NUCLEI_2D_HOLDOUT = 2


def resolve_2d(data: Path, holdout: str = "") -> tuple[_data.Collection, list[str]]:
    """The 2D frames of ``data/lm_nuclei_2d`` and the held-out ones (``holdout``: names,
    comma-separated; "": the last `NUCLEI_2D_HOLDOUT` by name); `_data.DataError` when a
    held-out frame is absent or none is left to train on."""
    frames = _data.collection(Path(data) / NUCLEI_2D, default_voxel=NUCLEI_2D_VOXEL)
    held = holdout.split(",") if holdout else frames.last(NUCLEI_2D_HOLDOUT)
    absent = [n for n in held if n not in frames.images]
    if absent:
        raise _data.DataError(frames.folder / f"{absent[0]}_raw.tif",
                              f"--holdout names frame {absent[0]!r}, which is not there "
                              f"(frames: {', '.join(frames.names)})")
    if len(set(held)) >= len(frames.names):
        raise _data.DataError(frames.folder, f"{len(frames.names)} frames: none left to train "
                                             f"on beside the {len(set(held))} held out")
    return frames, held


def prepare_2d(data: Path, work: Path) -> Path:
    """The 2D frames as the collection ``work/lm_nuclei_2d.zarr`` (kept when made from the
    same files and pixel size)."""
    from dacapo.tools.convert_collection import convert_collection

    frames, _ = resolve_2d(data)
    _data.tell(NUCLEI_2D, frames.notes)
    container = Path(work) / f"{NUCLEI_2D}.zarr"
    stamp = frames.stamp()
    if not _data.is_prepared(container, stamp):
        if container.exists():
            shutil.rmtree(container)
        convert_collection(frames.folder, str(container), list(frames.grid_voxel))
        _data.mark_prepared(container, stamp)
    return container


def otsu_watershed(raw: np.ndarray, gt: np.ndarray) -> dict:
    """scikit-image gallery recipe, given its best chance: Gaussian smoothing (sigma 2),
    Otsu mask with holes filled, seeds at maxima of its distance transform at least
    ``min_distance`` apart, watershed of the negated distance within the mask, objects under
    100 pixels removed; the best of min_distance 7 / 15 / 25 by F1 on the held-out frame."""
    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.filters import threshold_otsu
    from skimage.segmentation import watershed

    from dacapo.ops.multiclass_metrics import multiclass_metrics
    from dacapo.ops.object_matching import object_matching

    smooth = ndimage.gaussian_filter(raw, 2)
    mask = ndimage.binary_fill_holes(smooth > threshold_otsu(smooth))
    dist = ndimage.distance_transform_edt(mask)
    best: dict = {}
    for min_distance in (7, 15, 25):
        peaks = peak_local_max(dist, min_distance=min_distance, labels=ndimage.label(mask)[0])
        markers = np.zeros(raw.shape, np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        seg = watershed(-dist, markers, mask=mask)
        seg[np.isin(seg, np.nonzero(np.bincount(seg.ravel()) < 100)[0])] = 0
        m = object_matching(seg, gt)
        pix, _ = multiclass_metrics((seg > 0).astype(np.int64), (gt > 0).astype(np.int64), 2)
        score = {"f1": m["f1_50"], "ap50": m["ap_50"], "map": m["ap_mean"],
                 "dice": float(pix["dice"][1]), "min_distance": min_distance}
        if not best or score["f1"] > best["f1"]:
            best = score
    return best


def membrane_watershed(raw: np.ndarray, gt: np.ndarray, voxel_size) -> dict:
    """Watershed of the smoothed membrane stain seeded at maxima of the distance to the
    membranes (membrane = stain above Otsu's threshold; distances in y voxels, ``voxel_size``
    z y x); best VOI over the smoothing."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu
    from skimage.segmentation import watershed

    from dacapo.ops.instance_metrics import instance_metrics

    best: dict = {}
    for sigma in (1.0, 2.0):
        smooth = ndimage.gaussian_filter(raw.astype(np.float32), sigma)
        inside = smooth < threshold_otsu(smooth)
        vz, vy, vx = voxel_size
        dist = ndimage.distance_transform_edt(inside, sampling=(vz / vy, 1, vx / vy))
        maxima = (dist == ndimage.maximum_filter(dist, size=7)) & (dist > 2)
        seeds, _ = ndimage.label(maxima)
        seg = watershed(smooth, seeds).astype(np.uint64)
        m = instance_metrics(seg, gt.astype(np.uint64))
        score = {"voi": float(m["voi"]), "adapted_rand_error": float(m["adapted_rand_error"]),
                 "sigma": sigma}
        if not best or score["voi"] < best["voi"]:
            best = score
    return best


def _setting(rows: list[dict], dataset: str, it: int, params: str) -> dict:
    """The criteria of one (dataset, iteration, parameters)."""
    return {r["criterion"]: r["value"] for r in rows if r["dataset"] == dataset
            and r["iteration"] == it and r["parameters"] == params}


def _best(rows: list[dict], dataset: str, iteration: int | None = None) -> tuple[int, str]:
    """(iteration, parameters) of the highest F1 on ``dataset`` (at ``iteration``)."""
    f1 = [r for r in rows if r["criterion"] == "f1" and r["dataset"] == dataset
          and (iteration is None or r["iteration"] == iteration)]
    top = max(f1, key=lambda r: r["value"])
    return top["iteration"], top["parameters"]


KEEP_2D = ("f1", "ap50", "map", "f1_50_95", "voi", "adapted_rand_error")


def _kept(scores: dict) -> dict:
    return {k: v for k, v in scores.items() if k in KEEP_2D or k.endswith("__dice")}


def nuclei_2d(args, work: Path) -> dict:
    """Train on the frames not in ``--holdout``; score each held-out frame three ways: at the
    checkpoint + parameters best on that frame (optimistic: chosen on the test), chosen on
    the *other* held-out frame (what a user gets: the choice is made on a validation image,
    the score on another), and at the last checkpoint with the parameters chosen on the
    other frame."""
    from dacapo.io.arrays import open_array
    from dacapo.planning.collection_plan import plan_collection
    from dacapo.training.loop import train_run
    from dacapo.training.step_timer import measure_step

    frames, held = resolve_2d(Path(args.data), args.holdout)
    container = prepare_2d(Path(args.data), work)
    validate = [(n, str(container / n / "raw"), str(container / n / "labels")) for n in held]
    rc, _ = plan_collection(str(container), "inner_distance", minutes=args.minutes,
                            name="planned_lm_nuclei_2d", seed=args.seed, channel="nucleus", measure=measure_step,
                            validate=validate)
    rc = quality.overridden(rc, tag=args.tag)
    load0 = os.getloadavg()[0]
    train_s, run_dir = timed(train_run, rc, work / "runs", progress=False)
    rows = run_dir.validation_scores()
    last = max(r["iteration"] for r in rows)
    scores = {}
    for name in held:
        other = held[1 - held.index(name)] if len(held) == 2 else name
        it, params = _best(rows, name)
        it_o, params_o = _best(rows, other)
        _, params_last = _best(rows, other, last)
        raw = np.asarray(open_array(str(container / name / "raw"), "raw")[:]).astype(np.float32)
        gt = np.asarray(open_array(str(container / name / "labels"), "gt")[:])
        scores[name] = {
            "best_here": {"iteration": it, "parameters": params,
                          **_kept(_setting(rows, name, it, params))},
            "chosen_on_other": {"iteration": it_o, "parameters": params_o, "on": other,
                                **_kept(_setting(rows, name, it_o, params_o))},
            "last_chosen_on_other": {"iteration": last, "parameters": params_last,
                                     **_kept(_setting(rows, name, last, params_last))},
            "baseline_otsu_watershed": otsu_watershed(raw, gt),
        }
    return {
        "dataset": NUCLEI_2D, "held_out": held, "run": rc.name,
        "voxel_size_nm": list(frames.voxel_size),
        **({"voxel_size_assumed": frames.voxel_assumed} if frames.voxel_assumed else {}),
        "trained_on": [d.name for d in rc.datasplit_config.train],
        "config": quality.config_summary(rc), "minutes": args.minutes,
        "iterations": rc.num_iterations,
        "train_s": round(train_s, 1), "load": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "frames": scores,
    }


def cells_3d(args, work: Path) -> dict:
    from funlib.persistence import open_ds

    from dacapo.io.arrays import open_array
    from dacapo.pipeline.predict_options import PredictOptions
    from dacapo.pipeline.validate import validate_run
    from dacapo.runs.run_dir import RunDir

    ns = argparse.Namespace(data=args.data, recipe="planned", minutes=args.minutes,
                            seed=args.seed, iterations=0, tag=args.tag, fresh=args.fresh)
    result = quality.run_dataset("lm_cells_3d", ns, work, lambda _entry: None)
    paths = quality.prepare_data("lm_cells_3d", Path(args.data), work)
    gt_arr = open_ds(paths["validate/gt"], mode="r")
    raw = quality.crop(open_array(paths["raw"], "raw"), gt_arr.roi)
    vol = quality.resolve("lm_cells_3d", Path(args.data))
    result["baseline_membrane_watershed"] = membrane_watershed(
        raw, quality.crop(gt_arr, gt_arr.roi), vol.voxel_size)
    # the mutex watershed on the same checkpoint's prediction
    run_dir = RunDir(work / "runs" / result["run"])
    rc = run_dir.load_config()
    mws = attr.evolve(rc, name=f"{rc.name}_mws",
                      task_config=attr.evolve(rc.task_config, post_processor="mutex_watershed"))
    mws_dir = RunDir(work / "runs" / mws.name)
    if mws_dir.path.exists():
        shutil.rmtree(mws_dir.path)
    shutil.copytree(run_dir.path / "checkpoints", mws_dir.path / "checkpoints")
    mws_dir.save_config(mws)
    it = result["best"]["iteration"]
    rows = validate_run(mws_dir.path, it, PredictOptions(num_workers=0, progress=False))
    vois = [r for r in rows if r["criterion"] == "voi"]
    top = min(vois, key=lambda r: r["value"])
    result["mutex_watershed_same_checkpoint"] = {
        r["criterion"]: r["value"] for r in rows if r["parameters"] == top["parameters"]
        and r["criterion"] in ("voi", "adapted_rand_error")}
    result["mutex_watershed_same_checkpoint"]["parameters"] = top["parameters"]
    return result


@_data.exit_2
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(data_dir()))
    parser.add_argument("--work", default=None, help="default: `_harness.work_dir` of --data")
    parser.add_argument("--datasets", default=None,
                        help="comma-separated, of lm_nuclei_2d, lm_cells_3d; default: those "
                        "whose folder is in --data (none: a line, exit 0)")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="")
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--holdout", default="",
                        help="2D frames held out, comma-separated (two: each scored with the "
                        "choice made on the other); default: the last two by name")
    args = parser.parse_args(argv)
    runs = {NUCLEI_2D: nuclei_2d, "lm_cells_3d": cells_3d}
    if args.datasets is None:
        names = [n for n in runs if (Path(args.data) / n).is_dir()]
        absent = [n for n in runs if n not in names]
        if absent:
            print(f"quality_modalities: {args.data} has no folder {', '.join(absent)}: skipped",
                  flush=True)
        if not names:
            return 0
    else:
        names = args.datasets.split(",")
    for name in names:  # every folder read before any training
        if name == NUCLEI_2D:
            resolve_2d(Path(args.data), args.holdout)
        elif name in runs:
            _data.split(quality.resolve(name, Path(args.data)), quality.DATASETS[name]["holdout"])
        else:
            parser.error(f"--datasets: {name} unknown; choose from {', '.join(runs)}")
    args.work = args.work or str(work_dir(args.data))
    import torch

    torch.set_num_threads(1)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for name in names:
        entry = runs[name](args, work)
        entry["time"] = time.strftime("%Y-%m-%d %H:%M:%S")
        log_entry(work / "modalities_log.jsonl", entry)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
