"""Mutex watershed vs fragments + agglomeration on corrupted ground-truth affinities.

Data: ``fibsem_neurons/labels.tif`` of `_harness.data_dir` (50 x 100 x 200, 10 nm, 0 = boundary /
unknown). Affinities of the GT for the example neighbourhood (1,0,0), (0,1,0), (0,0,1),
(2,0,0), (0,4,0), (0,0,4) (`dacapo.ops.affinities`, the task's target), corrupted to mimic
a prediction: ``clip(gaussian_blur(0.1 + 0.8 aff, sigma) + N(0, noise), 0, 1)`` per channel,
seeded. Both post-processors run in one block on the same affinities (the task's sweeps:
mutex-watershed biases 0.1..0.9 with min_size 0 and 100; agglomeration thresholds
0.05..0.95) and are scored with `dacapo.ops.instance_metrics` against the GT (VOI on
labelled voxels; ARAND with segment 0 as singletons, CREMI). Reported: the best VOI of each
sweep and the ARAND at that parameter, plus the time of the whole sweep.

Blockwise check (``--blockwise``): the agglomeration on the zarr prediction with blocks of
``--block`` voxels (2 workers), VOI between it and the one-block result (all voxels, 0 a
label like any other) and both VOIs against the GT, at the one-block run's best threshold.

Run: ``.venv/bin/python benchmarks/bench_agglomeration.py [--noise 0.1 --sigma 1]
[--blockwise]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from _harness import dataset, timed
from funlib.geometry import Coordinate
from funlib.persistence import Array, prepare_ds
from scipy.ndimage import gaussian_filter

from dacapo.blockwise import BlockwiseOptions
from dacapo.experiments.tasks.post_processors import (
    AgglomerationPostProcessor,
    WatershedPostProcessor,
)
from dacapo.ops.affinities import affinities
from dacapo.ops.instance_metrics import (
    contingency_table,
    instance_metrics,
    variation_of_information,
)

OFFSETS = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (2, 0, 0), (0, 4, 0), (0, 0, 4)]
VOXEL = Coordinate(10, 10, 10)


def corrupted_affinities(labels: np.ndarray, sigma: float, noise: float,
                         seed: int) -> np.ndarray:
    affs = affinities(labels, OFFSETS).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty_like(affs)
    for k in range(len(affs)):
        out[k] = gaussian_filter(0.1 + 0.8 * affs[k], sigma)
    out += rng.normal(0, noise, out.shape).astype(np.float32)
    return np.clip(out, 0, 1).astype(np.float32)


def full_voi(a: np.ndarray, b: np.ndarray) -> float:
    split, merge = variation_of_information(
        contingency_table(a.astype(np.uint64) + 1, b.astype(np.uint64) + 1))
    return split + merge


def sweep(post, prediction: Array, labels: np.ndarray, tmp: Path, name: str) -> dict:
    post.set_prediction(prediction)
    start = time.perf_counter()
    rows = []
    for p in post.enumerate_parameters():
        out = post.process(p, tmp / f"{name}.zarr" / str(p.id))
        m = instance_metrics(out[out.roi], labels)
        rows.append({"parameters": str(p), "voi": m["voi"], "voi_split": m["voi_split"],
                     "voi_merge": m["voi_merge"], "arand": m["adapted_rand_error"]})
    best = min(rows, key=lambda r: r["voi"])
    return {"best": best, "seconds": time.perf_counter() - start, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sigma", type=float, default=1.0)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seed-distance", type=int, default=10)
    parser.add_argument("--blockwise", action="store_true")
    parser.add_argument("--block", type=int, nargs=3, default=(50, 64, 64))
    parser.add_argument("--all-rows", action="store_true")
    parser.add_argument("--skip-mws", action="store_true")
    parser.add_argument("--mws-biases", type=float, nargs="+", default=[0.1, 0.25, 0.5, 0.75, 0.9])
    parser.add_argument("--mws-min-sizes", type=int, nargs="+", default=[0, 100])
    args = parser.parse_args()
    labels = tifffile.imread(dataset("fibsem_neurons") / "labels.tif").astype(np.uint64)
    affs = corrupted_affinities(labels, args.sigma, args.noise, args.seed)
    prediction = Array(affs, offset=(0, 0, 0), voxel_size=VOXEL)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results = {
            "data": f"fibsem_neurons {labels.shape}, sigma {args.sigma}, noise {args.noise}",
            "agglomeration": sweep(AgglomerationPostProcessor(
                OFFSETS, seed_distance=args.seed_distance), prediction, labels, tmp, "agg"),
        }
        if not args.skip_mws:
            results["mutex_watershed"] = sweep(
                WatershedPostProcessor(OFFSETS, biases=args.mws_biases, min_size=args.mws_min_sizes),
                prediction, labels, tmp, "mws")
        if args.blockwise:
            best = results["agglomeration"]["best"]["parameters"]
            threshold = float(best.split("threshold=")[1].rstrip(")"))
            post = AgglomerationPostProcessor(OFFSETS, thresholds=[threshold],
                                              seed_distance=args.seed_distance)
            path = tmp / "pred.zarr" / "affs"
            array = prepare_ds(str(path), shape=affs.shape, offset=(0, 0, 0), voxel_size=VOXEL,
                               axis_names=["c^", "z", "y", "x"], dtype=np.float32, mode="w")
            array[array.roi] = affs
            post.set_prediction(prediction)
            params = next(iter(post.enumerate_parameters()))
            one = post.process(params, tmp / "one.zarr" / "s")
            one = one[one.roi]
            post.set_prediction(str(path))
            seconds, out = timed(post.process, params, tmp / "blockwise.zarr" / "s",
                                 BlockwiseOptions(num_workers=2),
                                 block_size=Coordinate(args.block) * VOXEL)
            seg = out[out.roi]
            results["blockwise"] = {
                "block": list(args.block), "threshold": threshold, "seconds": seconds,
                "voi_blockwise_vs_one_block": full_voi(seg, one),
                "voi_blockwise_vs_gt": instance_metrics(seg, labels)["voi"],
                "voi_one_block_vs_gt": instance_metrics(one, labels)["voi"],
                "arand_blockwise_vs_gt": instance_metrics(seg, labels)["adapted_rand_error"],
            }
    if not args.all_rows:
        for key in ("mutex_watershed", "agglomeration"):
            if key in results:
                results[key].pop("rows")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
