"""Instances from inner distances on real nuclei: threshold + connected components vs the
InnerDistance task's ``instances`` post-processor (seeded watershed).

Data: ``lm_nuclei`` of `_harness.data_dir` (1135, 100³ light-microscopy crop of Arabidopsis nuclei,
54 nucleus ids, voxel 284 × 127 × 127 nm). From the GT labels the task's predictor makes
the inner-distance target (tanh(d / scale_factor), scale_factor 500 nm); a "prediction" is
that target corrupted deterministically (Gaussian blur of ``blur`` voxels in-plane, the
same world extent in z, plus Gaussian noise of std ``noise`` blurred by 0.5 voxel).

Methods, each over its sweep, both with objects < ``--min-size`` voxels removed:
- ``threshold+cc``: ``prediction > t`` (the task's ``thresholds``), face-connected components;
- ``instances``: the task's post-processor (`DistanceInstancesPostProcessor`, default
  seeds: two-threshold, seed thresholds 0.5/0.7/0.9, mask thresholds = ``thresholds``).
Scores (`BinaryInstanceEvaluator`, GT 0 ignored by VOI/ARAND): VOI (bits), adapted Rand
error, F1 of the IoU >= 0.5 matching, Dice of the foreground; reported at the parameters
with the best VOI and at those with the best F1 (the task's main criterion). Also: VOI
between the blockwise run (64³-voxel blocks, context 3.2 µm) and the one-block run at the
best-F1 parameters of each corrupted prediction.

Run: ``.venv/bin/python benchmarks/bench_distance_instances.py`` (about 5 min on one
core; ``--quick`` sweeps fewer parameters).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cc3d
import numpy as np
import tifffile
from _harness import data_dir, pin_threads, timed
from funlib.geometry import Coordinate
from funlib.persistence import Array, prepare_ds
from scipy import ndimage

from dacapo.blockwise import BlockwiseOptions
from dacapo.experiments.tasks import InnerDistanceTaskConfig
from dacapo.ops.instance_metrics import instance_metrics
from dacapo.ops.watershed import remove_small_fragments

VOXEL = (284, 127, 127)  # nm, meta.json rounded
CORRUPTIONS = [("clean", 0.0, 0.0), ("blur1+noise0.1", 1.0, 0.1), ("blur2+noise0.2", 2.0, 0.2)]


def corrupt(target: np.ndarray, blur: float, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = target.astype(np.float32)
    if blur:
        p = ndimage.gaussian_filter(p, (blur * VOXEL[2] / VOXEL[0], blur, blur))
    if noise:
        p = ndimage.gaussian_filter(p + noise * rng.standard_normal(p.shape).astype(np.float32), 0.5)
    return p.astype(np.float32)


def scores(evaluator, seg: np.ndarray, gt: Array) -> dict[str, float]:
    s = evaluator.evaluate(Array(seg, voxel_size=VOXEL), gt)
    return {"voi": s.voi, "arand": s.adapted_rand_error, "f1": s.f1, "dice": s.nucleus__dice}


def threshold_cc(pred: np.ndarray, threshold: float, min_size: int) -> np.ndarray:
    """``pred > threshold``, face-connected components, objects < ``min_size`` removed."""
    labels = cc3d.connected_components(pred > threshold, connectivity=6).astype(np.uint64)
    return remove_small_fragments(labels, min_size)


def process_and_read(post, params, path: Path, **kwargs) -> np.ndarray:
    """The post-processor's output for ``params``, read back."""
    return np.asarray(post.process(params, path, **kwargs)[:])


def summary(rows: list[dict]) -> dict:
    by_voi = min(rows, key=lambda r: r["voi"])
    by_f1 = max(rows, key=lambda r: r["f1"])
    return {"best_voi": by_voi, "best_f1": by_f1}


def sweeps(config, task, target: np.ndarray, gt: Array, args, tmp: Path) -> dict:
    """Both methods over their sweeps on each corrupted prediction (printed as they go)."""
    results = {}
    for name, blur, noise in CORRUPTIONS:
        pred = corrupt(target, blur, noise, args.seed)
        cc_rows, ws_rows, t_cc, t_ws = [], [], 0.0, 0.0
        for t in config.thresholds:
            seconds, seg = timed(threshold_cc, pred, t, args.min_size)
            t_cc += seconds
            cc_rows.append({"threshold": t, **scores(task.evaluator, seg, gt)})
        post = task.post_processor
        post.set_prediction(Array(pred[None], voxel_size=VOXEL))
        for p in task.parameters:
            seconds, seg = timed(post.process, p, tmp / f"{name}.zarr" / f"p{p.id}")
            t_ws += seconds
            ws_rows.append({"threshold": p.threshold, "seed_threshold": p.seed_threshold,
                            **scores(task.evaluator, np.asarray(seg[:]), gt)})
        t_cc, t_ws = t_cc / len(cc_rows), t_ws / len(ws_rows)
        results[name] = {"threshold+cc": summary(cc_rows), "instances": summary(ws_rows),
                         "seconds_per_run": {"threshold+cc": t_cc, "instances": t_ws}}
        print(f"\n{name}  (s/run: cc {t_cc:.2f}, instances {t_ws:.2f}; incl. min_size, excl. scoring)")
        for method in ("threshold+cc", "instances"):
            for key in ("best_voi", "best_f1"):
                r = results[name][method][key]
                params = {k: v for k, v in r.items() if k in ("threshold", "seed_threshold")}
                print(f"  {method:13s} {key:8s} VOI {r['voi']:.3f}  ARAND {r['arand']:.3f}  "
                      f"F1@0.5 {r['f1']:.3f}  Dice {r['dice']:.3f}  at {params}")
    return results


def blockwise_vs_one_block(task, target: np.ndarray, gt: Array, args, tmp: Path,
                           results: dict) -> None:
    """At the main criterion's (F1's) choice of each corrupted case: the blockwise run
    against the one-block run (added to ``results``)."""
    for name, blur, noise in CORRUPTIONS[1:]:
        best = results[name]["instances"]["best_f1"]
        (params,) = [p for p in task.parameters if p.threshold == best["threshold"]
                     and p.seed_threshold == best["seed_threshold"]]
        pred = corrupt(target, blur, noise, args.seed)
        post = task.post_processor
        post.set_prediction(Array(pred[None], voxel_size=VOXEL))
        one = np.asarray(post.process(params, tmp / "bw.zarr" / f"one_{name}")[:])
        path = tmp / "pred.zarr" / name
        ds = prepare_ds(str(path), shape=(1, *pred.shape), voxel_size=VOXEL,
                        axis_names=["c^", "z", "y", "x"], dtype=np.float32, mode="w")
        ds[ds.roi] = pred[None]
        post.set_prediction(str(path))
        t_bw, blocks = timed(process_and_read, post, params, tmp / "bw.zarr" / f"blocks_{name}",
                             options=BlockwiseOptions(num_workers=1),
                             block_size=Coordinate(64, 64, 64) * Coordinate(VOXEL))
        between = instance_metrics(blocks, one)
        vs_gt = {k: scores(task.evaluator, seg, gt) for k, seg in (("one", one), ("blocks", blocks))}
        results[f"blockwise_vs_one_block/{name}"] = {
            "voi": between["voi"], "arand": between["adapted_rand_error"], "seconds": t_bw,
            "parameters": str(params), "vs_gt": vs_gt}
        print(f"\nblockwise (64^3-voxel blocks: 2x2x2, context 3.2 um) vs one block, {name}, "
              f"{params}: VOI {between['voi']:.4f}, ARAND {between['adapted_rand_error']:.4f} "
              f"({t_bw:.1f} s); vs GT: one block VOI {vs_gt['one']['voi']:.3f} F1 "
              f"{vs_gt['one']['f1']:.3f}, blockwise VOI {vs_gt['blocks']['voi']:.3f} F1 "
              f"{vs_gt['blocks']['f1']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--min-size", type=int, default=100)
    parser.add_argument("--scale-factor", type=float, default=500.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=data_dir() / "lm_nuclei",
                        help="folder with 1135_labels.tif")
    args = parser.parse_args()

    labels = tifffile.imread(args.data / "1135_labels.tif").astype(np.uint32)
    gt = Array(labels, voxel_size=VOXEL)
    thresholds = [0.05, 0.1, 0.2, 0.3] if args.quick else None
    config = InnerDistanceTaskConfig(
        name="nuclei", channels=["nucleus"], clip_distance=2000.0, tol_distance=300.0,
        scale_factor=args.scale_factor, post_processor="instances", min_size=args.min_size,
        instance_context=3200.0, **({"thresholds": thresholds} if thresholds else {}),
    )
    task = config.build()
    target = np.asarray(task.predictor.create_target(gt).data)[0]
    print(f"lm_nuclei 1135: {labels.shape} voxels, {len(np.unique(labels)) - 1} nuclei, "
          f"voxel {VOXEL} nm, scale_factor {args.scale_factor:g} nm, min_size {args.min_size}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_distinst_"))
    results = sweeps(config, task, target, gt, args, tmp)
    blockwise_vs_one_block(task, target, gt, args, tmp, results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    pin_threads()
    main()
