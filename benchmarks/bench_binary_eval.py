"""Binary evaluation, all 21 metrics of one channel on 1 Mvoxel (100³, voxel 8×4×4 nm), one
core: `dacapo.ops.binary_metrics` (two ``edt`` EDTs on the bounding box of S ∪ T) against a
naive reference (two full-volume scipy EDTs, the same formulas). Both give the same numbers;
checked here. Goal: ≤ 50 ms.

Run: ``.venv/bin/python benchmarks/bench_binary_eval.py``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from scipy.ndimage import distance_transform_edt  # noqa: E402

from dacapo.ops.binary_metrics import BINARY_METRIC_NAMES, binary_metrics, binary_voi  # noqa: E402

VOXEL = (8.0, 4.0, 4.0)


def make_input(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Truth: random balls filling the volume (~30 %); test: the truth shifted by one voxel
    along z with 2 % of the voxels flipped."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1) * np.asarray(VOXEL)
    truth = np.zeros((n, n, n), bool)
    for _ in range(40):
        centre = rng.uniform(0, n * np.asarray(VOXEL))
        truth |= np.linalg.norm(grid - centre, axis=-1) < rng.uniform(20, 70)
    test = np.roll(truth, 1, axis=0) ^ (rng.random(truth.shape) < 0.02)
    return test, truth


def naive_metrics(test, truth, voxel_size, tol, clip) -> dict[str, float]:
    """Full-volume scipy EDTs and the formulas of dacapo.ops.binary_metrics (non-empty masks)."""
    dist_t = distance_transform_edt(~truth, sampling=voxel_size)
    dist_s = distance_transform_edt(~test, sampling=voxel_size)
    fpd, fnd = dist_t[test], dist_s[truth]
    s, t = test.sum(), truth.sum()
    tp = (test & truth).sum()
    fp, fn = s - tp, t - tp
    bg = truth.size - t
    fp_tol, fn_tol = (fpd > tol).sum(), (fnd > tol).sum()
    tp_tol = (test | truth).sum() - fp_tol - fn_tol
    p, r = tp / s, tp / t
    pt, rt = tp_tol / (tp_tol + fp_tol), tp_tol / (tp_tol + fn_tol)
    mfp, mfn = fpd.mean(), fnd.mean()
    mfpc, mfnc = np.minimum(fpd, clip).mean(), np.minimum(fnd, clip).mean()
    return {
        "dice": 2 * tp / (s + t),
        "jaccard": tp / (test | truth).sum(),
        "hausdorff": max(fpd.max(), fnd.max()),
        "false_negative_rate": fn / t,
        "false_negative_rate_with_tolerance": fn_tol / t,
        "false_discovery_rate": fp / s,
        "false_positive_rate": fp / bg,
        "false_positive_rate_with_tolerance": fp_tol / bg,
        "precision": p,
        "recall": r,
        "f1_score": 2 * p * r / (p + r),
        "precision_with_tolerance": pt,
        "recall_with_tolerance": rt,
        "f1_score_with_tolerance": 2 * pt * rt / (pt + rt),
        "voi": binary_voi(int(tp), int(fp), int(fn), truth.size),
        "mean_false_positive_distance": mfp,
        "mean_false_negative_distance": mfn,
        "mean_false_distance": (mfp + mfn) / 2,
        "mean_false_positive_distance_clipped": mfpc,
        "mean_false_negative_distance_clipped": mfnc,
        "mean_false_distance_clipped": (mfpc + mfnc) / 2,
    }


def best_time(fn, repeats: int):
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    test, truth = make_input(args.size)
    tol, clip = 8.0, 40.0
    mvox = test.size / 1e6
    t_ours, ours = best_time(lambda: binary_metrics(test, truth, VOXEL, tol, clip), args.repeats)
    t_naive, ref = best_time(lambda: naive_metrics(test, truth, VOXEL, tol, clip), 3)
    worst = max(
        abs(ours[m] - ref[m]) / max(abs(ref[m]), 1e-12)
        for m in BINARY_METRIC_NAMES
        if not math.isnan(ref[m])
    )
    print(f"input: {test.shape} ({mvox:.1f} Mvoxel), voxel {VOXEL}, |T| = {truth.sum()}, "
          f"|S| = {test.sum()}, 21 metrics, 1 thread")
    print(f"dacapo (edt on the bounding box): {t_ours * 1e3:7.1f} ms  {mvox / t_ours:7.1f} Mvoxel/s"
          f"  (goal <= 50 ms)")
    print(f"naive  (full scipy EDTs)        : {t_naive * 1e3:7.1f} ms  {mvox / t_naive:7.1f} Mvoxel/s")
    print(f"speed-up: {t_naive / t_ours:.1f}x; max relative difference over the 21 metrics: {worst:.1e}")


if __name__ == "__main__":
    main()
