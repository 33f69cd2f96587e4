"""The bucket-queue flood (`dacapo.ops.flood`) against ``skimage.segmentation.watershed``:
speed on the same input in one run, and the scores it gives on real held-out predictions.

1. Speed: the seeded watershed of a 160^3 block (smoothed noise affinities quantised like
   uint8, the agglomeration's seeds) and of a run's held-out prediction, both ways: seconds,
   Mvoxel/s, the ratio, the fraction of voxels labelled alike (ties may go another way).
2. Quality: for each RUN_DIR (a trained agglomeration or distance-instances run with stored
   validation predictions), its post-processor at every swept parameter on the held-out
   prediction of ``--iteration`` (default: the last), in one block, with the flood and with
   skimage's watershed in its place; scored by the run's evaluator against the GT. Prints
   the best value of the main criteria both ways.

Run: ``.venv/bin/python benchmarks/bench_flood.py [RUN_DIR ...] [--iteration N]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from skimage.segmentation import watershed

import dacapo.ops.agglomeration as agglomeration
import dacapo.ops.distance_instances as distance_instances
from dacapo.io.arrays import open_array
from dacapo.ops.flood import flood
from dacapo.pipeline.in_memory import crop_array
from dacapo.runs.run_dir import RunDir

SHOWN = ("voi", "adapted_rand_error", "f1", "ap50", "map", "dice")


def skimage_flood(height, markers, mask=None, step=None):
    """skimage's watershed with `flood`'s signature (float heights, no quantisation)."""
    return watershed(np.asarray(height, np.float64), markers=np.asarray(markers).astype(np.int64),
                     mask=mask).astype(np.uint64)


@contextmanager
def skimage_in_place():
    saved = agglomeration.flood, distance_instances.flood
    agglomeration.flood = distance_instances.flood = skimage_flood
    try:
        yield
    finally:
        agglomeration.flood, distance_instances.flood = saved


def timed(fn, repeats: int = 3):
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def speed(name: str, height: np.ndarray, markers: np.ndarray, mask=None) -> None:
    flood(height[:4, :4], markers[:4, :4])  # compile outside the timing
    ours_s, ours = timed(lambda: flood(height, markers, mask))
    ref_s, ref = timed(lambda: skimage_flood(height, markers, mask))
    mvox = height.size / 1e6
    print(json.dumps({"case": name, "voxels": int(height.size), "seeds": int(len(np.unique(markers)) - 1),
                      "flood_s": round(ours_s, 3), "skimage_s": round(ref_s, 3),
                      "flood_mvox_s": round(mvox / ours_s, 2), "skimage_mvox_s": round(mvox / ref_s, 2),
                      "speed_ratio": round(ref_s / ours_s, 2),
                      "same_label_fraction": round(float((ours == ref).mean()), 5)}), flush=True)


def synthetic_speed() -> None:
    rng = np.random.default_rng(0)
    noise = gaussian_filter(rng.random((160, 160, 160)).astype(np.float32), 3)
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    affs = np.round(np.stack([noise] * 3) * 255).astype(np.float32) / 255
    markers = agglomeration.seeds(affs, (1, 1, 1), 0.5, 8)
    speed("synthetic 160^3 boundary map", agglomeration.boundary_map(affs), markers)


def run_quality(run_path: Path, iteration: int | None) -> None:
    run = RunDir(run_path)
    rc = run.load_config()
    task = rc.task_config.build()
    post = task.post_processor
    iterations = sorted(p.name for p in run.predictions.iterdir())
    it = f"{iteration:08d}" if iteration is not None else iterations[-1]
    for dataset in rc.datasplit_config.validate:
        pred_path = run.predictions / it / f"{dataset.name}.zarr" / "prediction"
        pred, gt = open_array(pred_path), open_array(dataset.gt)
        roi = pred.roi.intersect(gt.roi)
        truth = crop_array(gt, roi)
        post.set_prediction(crop_array(pred, pred.roi))
        best: dict[str, dict] = {}
        seconds = {}
        for way in ("flood", "skimage"):
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp, \
                    (skimage_in_place() if way == "skimage" else _nothing()):
                for p in post.enumerate_parameters():
                    seg = post.process(p, Path(tmp) / "seg.zarr" / str(p.id))
                    scores = task.evaluator.evaluate(crop_array(seg, roi), truth)
                    for criterion, value in scores.to_dict().items():
                        if np.isnan(value):
                            continue
                        entry = best.setdefault(criterion, {})
                        old = entry.get(way)
                        if old is None or (value > old if scores.higher_is_better(criterion)
                                           else value < old):
                            entry[way] = value
            seconds[way] = round(time.perf_counter() - start, 1)
        print(json.dumps({"run": rc.name, "iteration": int(it), "dataset": dataset.name,
                          "sweep_seconds": seconds,
                          "best": {c: {w: round(v, 4) for w, v in e.items()}
                                   for c, e in best.items() if c.rsplit("__", 1)[-1] in SHOWN}}),
              flush=True)


@contextmanager
def _nothing():
    yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="*")
    parser.add_argument("--iteration", type=int, default=None)
    args = parser.parse_args()
    synthetic_speed()
    for run in args.runs:
        run_quality(run, args.iteration)


if __name__ == "__main__":
    main()
