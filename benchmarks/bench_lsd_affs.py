"""Affinities + LSDs training target and weight (`AffinitiesPredictor`) on a 50×100×200 label
volume (~90 objects, 1-voxel gaps, voxel 8×4×4 nm), σ = 5 voxels (num_lsd_voxels=5, 40 nm),
neighborhood [(1,0,0),(0,1,0),(0,0,1),(3,0,0),(0,9,0),(0,0,9)].

Fast: `AffinitiesPredictor.create_target` + `create_weight` (numba LSDs per object inside
its bounding box grown by the kernel radius, threads over objects). Naive reference: the
LSD definition applied literally — for every object, ten full-volume
``scipy.ndimage.gaussian_filter`` calls (mass, 3 first, 6 second moments) — plus affinities
by ``np.roll`` and a straightforward class-balancing loop. Both outputs are compared
(max |difference| printed). Goals: ≥ 100× the naive method and < 1 s.

Run: ``.venv/bin/python benchmarks/bench_lsd_affs.py`` (``--threads 1`` for one core).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from _harness import repeat
from scipy import ndimage

NBH = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (3, 0, 0), (0, 9, 0), (0, 0, 9)]
VOXEL = (8, 4, 4)
SHAPE = (50, 100, 200)
NUM_LSD_VOXELS = 5


def make_labels(seed: int = 0, num: int = 90) -> np.ndarray:
    """Voronoi cells of ``num`` random seeds (anisotropic distances), one-voxel gaps."""
    rng = np.random.default_rng(seed)
    seeds = np.zeros(SHAPE, np.uint64)
    points = np.stack([rng.integers(0, s, num) for s in SHAPE], axis=1)
    seeds[tuple(points.T)] = np.arange(1, num + 1)
    _, idx = ndimage.distance_transform_edt(seeds == 0, sampling=VOXEL, return_indices=True)
    labels = seeds[tuple(idx)]
    gaps = np.zeros(SHAPE, bool)
    for axis in range(3):
        diff = np.diff(labels.astype(np.int64), axis=axis) != 0
        index = [slice(None)] * 3
        index[axis] = slice(0, -1)
        gaps[tuple(index)] |= diff
    labels[gaps] = 0
    return labels


def naive(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Target and weight the straightforward way (see module docstring)."""
    sigma = NUM_LSD_VOXELS * max(VOXEL)
    dims = 3
    x = np.meshgrid(*[(np.arange(n) + 0.5) * v for n, v in zip(SHAPE, VOXEL)], indexing="ij")
    lsds = np.zeros((10,) + SHAPE)
    pairs = [(0, 1), (0, 2), (1, 2)]
    for label in np.unique(labels):
        if label == 0:
            continue
        m = (labels == label).astype(np.float64)

        def gauss(a):
            return ndimage.gaussian_filter(
                a, [sigma / v for v in VOXEL], mode="constant", cval=0.0, truncate=3.0
            )

        c = gauss(m)
        c1 = np.where(c == 0, 1.0, c)
        mu = [gauss(x[i] * m) / c1 for i in range(dims)]
        cov = {(i, j): gauss(x[i] * x[j] * m) / c1 - mu[i] * mu[j]
               for i in range(dims) for j in range(i, dims)}
        var = [np.maximum(cov[i, i], 0.001) for i in range(dims)]
        channels = [(mu[i] - x[i]) / sigma * 0.5 + 0.5 for i in range(dims)]
        channels += [var[i] / sigma**2 for i in range(dims)]
        channels += [cov[i, j] / np.sqrt(var[i] * var[j]) * 0.5 + 0.5 for i, j in pairs]
        channels += [c]
        inside = labels == label
        for k, ch in enumerate(channels):
            lsds[k][inside] = np.clip(ch[inside], 0, 1)
    affs = np.zeros((len(NBH),) + SHAPE, np.float32)
    valid = np.zeros((len(NBH),) + SHAPE, bool)
    for k, o in enumerate(NBH):
        partner = np.roll(labels, [-v for v in o], axis=(0, 1, 2))
        inside = np.ones(SHAPE, bool)
        for axis, v in enumerate(o):
            index = [slice(None)] * 3
            index[axis] = slice(SHAPE[axis] - v, None)
            inside[tuple(index)] = False
        affs[k] = (labels == partner) & (labels != 0) & inside
        valid[k] = inside
    weight = np.zeros((len(NBH) + 10,) + SHAPE, np.float32)
    for k in range(len(NBH)):
        ones = affs[k][valid[k]].mean()
        f1, f0 = np.clip([ones, 1 - ones], 0.05, 0.95)
        weight[k] = np.where(affs[k] == 1, 1 / (2 * f1), 1 / (2 * f0)) * valid[k]
    fg = np.clip((labels != 0).mean(), 0.05, 0.95)
    weight[len(NBH):] = np.where(labels != 0, 1 / (2 * fg), 1 / (2 * (1 - fg)))
    return np.concatenate([affs, lsds.astype(np.float32)]), weight


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="cap numba/object threads")
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()
    if args.threads:
        threads = args.threads
        os.cpu_count = lambda: threads  # the LSD kernel runs one thread per CPU over objects

    from funlib.persistence import Array

    from dacapo.experiments.tasks.predictors import AffinitiesPredictor

    labels = make_labels()
    n_obj = len(np.unique(labels)) - 1
    mvox = labels.size / 1e6
    gt = Array(labels, offset=(0, 0, 0), voxel_size=VOXEL, axis_names=["z", "y", "x"])
    predictor = AffinitiesPredictor(NBH, lsds=True, num_lsd_voxels=NUM_LSD_VOXELS)

    def fast():
        target = predictor.create_target(gt)
        weight, _ = predictor.create_weight(gt, target)
        return np.asarray(target.data), np.asarray(weight.data)

    times = repeat(fast, args.repeats, warmup=1)  # warm-up: numba compilation / cache load
    target, weight = times.result
    best, best_cpu = times.min, times.cpu_min
    print(f"input: {SHAPE} labels, {n_obj} objects, voxel {VOXEL} nm, sigma = "
          f"{NUM_LSD_VOXELS} voxels ({NUM_LSD_VOXELS * max(VOXEL)} nm), {len(NBH)} offsets, "
          f"threads: {os.cpu_count()}")
    print(f"fast  (AffinitiesPredictor target + weight): best of {args.repeats} "
          f"{best * 1e3:8.1f} ms  {mvox / best:7.2f} Mvoxel/s  (CPU time, all threads: "
          f"{best_cpu * 1e3:.1f} ms)")
    if args.skip_naive:
        return
    times = repeat(naive, 1, labels)
    ref_target, ref_weight = times.result
    t_naive, cpu_naive = times.min, times.cpu_min
    print(f"naive (per-object full-volume Gaussians): {t_naive * 1e3:8.1f} ms  "
          f"{mvox / t_naive:7.3f} Mvoxel/s  (CPU time: {cpu_naive * 1e3:.1f} ms)")
    print(f"max |target - naive| = {np.abs(target - ref_target).max():.2e}, "
          f"max |weight - naive| = {np.abs(weight - ref_weight).max():.2e}")
    print(f"speed-up: {t_naive / best:.0f}x wall (goal >= 100x), {cpu_naive / best_cpu:.0f}x CPU "
          f"time; fast < 1 s: {best < 1.0}")


if __name__ == "__main__":
    main()
