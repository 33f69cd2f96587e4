"""Distance target + weight, 1 channel, 100³ labels, voxel 8×4×4 nm, with a mask and
``mask_distances``: DistancePredictor (exact face-midpoint kernel) against the naive method
of old DaCapo (per-channel scipy EDT on the 2× grid: boundary marks at odd positions,
sampling s/2, read back at even positions; the mask edge by a scipy EDT of the padded mask).
The targets are the same numbers (checked here); the weights differ only where the mask
edge distance differs by the half voxel between a masked-out voxel's centre and its face.

Run: ``.venv/bin/python benchmarks/bench_distance_target.py`` (single thread).
"""

from __future__ import annotations

import argparse

import numpy as np
from _harness import pin_threads, timed
from funlib.geometry import Coordinate
from funlib.persistence import Array
from scipy.ndimage import distance_transform_edt

from dacapo.experiments.tasks.predictors import DistancePredictor
from dacapo.ops.distances import SATURATION

VOXEL = (8, 4, 4)
SCALE = 50.0


def make_input(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Instance labels (random balls) and a mask with an unlabelled slab."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1) * np.asarray(VOXEL)
    labels = np.zeros((n, n, n), np.uint64)
    for i in range(1, 60):
        centre = rng.uniform(0, n * np.asarray(VOXEL))
        labels[np.linalg.norm(grid - centre, axis=-1) < rng.uniform(20, 80)] = i
    mask = np.ones((n, n, n), np.uint8)
    mask[:, :, : n // 5] = 0
    return labels, mask


def _edt_2x_grid(values: np.ndarray, voxel_size) -> np.ndarray:
    """Old DaCapo: distance from voxel centres to face midpoints between differing
    neighbours via scipy's EDT on the (2n−1)-grid."""
    dims = values.ndim
    boundaries = np.zeros(tuple(2 * s - 1 for s in values.shape), bool)
    for d in range(dims):
        hi = tuple(slice(1, None) if a == d else slice(None) for a in range(dims))
        lo = tuple(slice(None, -1) if a == d else slice(None) for a in range(dims))
        target = tuple(slice(1, None, 2) if a == d else slice(None, None, 2) for a in range(dims))
        boundaries[target] = values[hi] != values[lo]
    if not boundaries.any():
        return np.full(values.shape, np.inf)
    dist = distance_transform_edt(~boundaries, sampling=[s / 2 for s in voxel_size])
    return dist[(slice(None, None, 2),) * dims]


def naive_target(labels, voxel_size, scale):
    """Old DaCapo's target: per-channel scipy EDT on the 2× grid, sign, tanh."""
    inside = labels > 0
    d = _edt_2x_grid(inside, voxel_size)
    d[np.isinf(d)] = 0.5 * min(n * s for n, s in zip(labels.shape, voxel_size))
    return np.tanh(np.where(inside, d, -d) / scale).astype(np.float32)


def naive_target_weight(labels, mask, voxel_size, scale, mask_distances, clipmin=0.05, clipmax=0.95):
    """Old DaCapo's target and weight: class balancing within the mask and, with
    ``mask_distances``, a scipy EDT of the zero-padded mask on the normal grid (distance to
    the nearest masked-out voxel centre, half a voxel more than to its face)."""
    inside = labels > 0
    target = naive_target(labels, voxel_size, scale)
    known = mask != 0
    counts = np.array([np.sum(known & ~inside), np.sum(known & inside)])
    frac = np.clip(counts / counts.sum(), clipmin, clipmax)
    weight = np.where(inside, 1 / (2 * frac[1]), 1 / (2 * frac[0])) * known
    if mask_distances:
        edge = distance_transform_edt(np.pad(known, 1), sampling=voxel_size)[(slice(1, -1),) * 3]
        claim = np.minimum(np.abs(target.astype(np.float64)), SATURATION)
        weight = weight * ((claim <= np.tanh(edge / scale) + 1e-6) & (edge > 0))
    return target[None], weight[None].astype(np.float32)


def dacapo_target_weight(gt: Array, mask: Array, scale: float, mask_distances: bool):
    """DistancePredictor.create_target + create_weight on funlib Arrays."""
    predictor = DistancePredictor(["fg"], scale_factor=scale, mask_distances=mask_distances)
    target = predictor.create_target(gt)
    weight, _ = predictor.create_weight(gt, target, mask)
    return np.asarray(target.data), np.asarray(weight.data)


def compare(ours, naive, repeats: int) -> tuple[float, float, object, object]:
    """Best-of-``repeats`` times of both, interleaved (the machine is shared)."""
    t_ours = t_naive = float("inf")
    for _ in range(repeats):
        seconds, out_ours = timed(ours)
        t_ours = min(t_ours, seconds)
        seconds, out_naive = timed(naive)
        t_naive = min(t_naive, seconds)
    return t_ours, t_naive, out_ours, out_naive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100, help="edge length in voxels")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    labels, mask = make_input(args.size)
    voxel_size = Coordinate(VOXEL)
    mvox = labels.size / 1e6
    gt_arr = Array(labels, offset=(0, 0, 0), voxel_size=voxel_size)
    mask_arr = Array(mask, offset=(0, 0, 0), voxel_size=voxel_size)
    small = Array(labels[:8, :8, :8], offset=(0, 0, 0), voxel_size=voxel_size)
    dacapo_target_weight(small, Array(mask[:8, :8, :8], (0, 0, 0), voxel_size), SCALE, True)
    print(f"input: {labels.shape} labels, voxel {VOXEL}, 1 channel, mask with an unlabelled "
          f"slab, scale_factor {SCALE}, 1 thread; dacapo = exact face-midpoint kernel, "
          "naive = scipy EDT on the 2x grid (old DaCapo)")
    predictor = DistancePredictor(["fg"], scale_factor=SCALE, mask_distances=False)
    t_o, t_n, target, ref_target = compare(
        lambda: np.asarray(predictor.create_target(gt_arr).data),
        lambda: naive_target(labels, VOXEL, SCALE),
        args.repeats,
    )
    print(f"target only             : dacapo {t_o * 1e3:7.1f} ms {mvox / t_o:6.2f} Mvoxel/s | "
          f"naive {t_n * 1e3:7.1f} ms {mvox / t_n:6.2f} Mvoxel/s | {t_n / t_o:5.1f}x; "
          f"max |diff| {np.abs(target[0] - ref_target).max():.1e}")
    for mask_distances in (False, True):
        t_o, t_n, (target, weight), (ref_t, ref_w) = compare(
            lambda md=mask_distances: dacapo_target_weight(gt_arr, mask_arr, SCALE, md),
            lambda md=mask_distances: naive_target_weight(labels, mask, VOXEL, SCALE, md),
            args.repeats,
        )
        differ = np.count_nonzero(np.abs(weight - ref_w) > 1e-5)
        print(f"target + weight, mask_distances={mask_distances!s:5}: dacapo {t_o * 1e3:7.1f} ms "
              f"{mvox / t_o:6.2f} Mvoxel/s | naive {t_n * 1e3:7.1f} ms {mvox / t_n:6.2f} "
              f"Mvoxel/s | {t_n / t_o:5.1f}x (goal >= 10x); weights differ at {differ} voxels")
    print("(with mask_distances the weights differ where the mask-edge distance differs by the "
          "half voxel between a masked-out voxel's centre (naive) and its face (dacapo))")


if __name__ == "__main__":
    pin_threads()
    main()
