"""Instance evaluation, all metrics (VOI split/merge, adapted Rand error, IoU matching at
0.5:0.95) on 1 Mvoxel (100³) with ~100 objects, one core: `instance_metrics` (one sparse
contingency table serves every metric) against a naive reference (skimage VOI, the CREMI
adapted Rand code, IoU of every truth/segment pair from boolean masks + linear assignment
per threshold). The numbers are compared. Goal: ≤ 50 ms.

Segmentation: the truth shifted by one voxel, 10 objects split in two, 5 pairs merged, 3 %
of the voxels given a random one of the segment ids (or 0).

Run: ``.venv/bin/python benchmarks/bench_instance_eval.py``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from scipy import ndimage, sparse  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402
from skimage.metrics import variation_of_information  # noqa: E402

from dacapo.ops.instance_metrics import IOU_THRESHOLDS, instance_metrics  # noqa: E402

SHAPE = (100, 100, 100)


def make_input(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    num = 100
    seeds = np.zeros(SHAPE, np.uint64)
    points = np.stack([rng.integers(0, s, num) for s in SHAPE], axis=1)
    seeds[tuple(points.T)] = np.arange(1, num + 1)
    dist, idx = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    truth = seeds[tuple(idx)]
    truth[dist > 14] = 0
    seg = np.roll(truth, 1, axis=0).copy()
    half = np.arange(SHAPE[2]) < SHAPE[2] // 2
    for label in rng.choice(np.arange(1, num + 1), 10, replace=False):  # splits
        seg[(seg == label) & half[None, None, :]] = label + 1000
    for a, b in rng.choice(np.arange(1, num + 1), (5, 2), replace=False):  # merges
        seg[seg == b] = a
    noise = rng.random(SHAPE) < 0.03
    ids = np.unique(seg)
    seg[noise] = rng.choice(ids, int(noise.sum()))
    return seg, truth


def cremi_adapted_rand(seg: np.ndarray, gt: np.ndarray) -> float:
    """CREMI ``adapted_rand`` (cremi/evaluation/rand.py)."""
    seg_a, seg_b = np.ravel(gt), np.ravel(seg)
    n = seg_a.size
    p_ij = sparse.csr_matrix((np.ones(n), (seg_a, seg_b)),
                             shape=(int(seg_a.max()) + 1, int(seg_b.max()) + 1))
    a, b, c = p_ij[1:, :], p_ij[1:, 1:], p_ij[1:, 0].todense()
    a_i, b_i = np.array(a.sum(1)), np.array(b.sum(0))
    sum_a = np.sum(a_i * a_i)
    sum_b = np.sum(b_i * b_i) + np.sum(c) / n
    sum_ab = np.sum(b.multiply(b)) + np.sum(c) / n
    precision, recall = sum_ab / sum_b, sum_ab / sum_a
    return 1.0 - 2.0 * precision * recall / (precision + recall)


def naive(seg: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    split, merge = variation_of_information(truth, seg, ignore_labels=(0,))
    t_ids = [i for i in np.unique(truth) if i != 0]
    s_ids = [j for j in np.unique(seg) if j != 0]
    t_masks = [truth == i for i in t_ids]
    iou = np.zeros((len(t_ids), len(s_ids)))
    for b, j in enumerate(s_ids):
        sm = seg == j
        for a, tm in enumerate(t_masks):
            inter = np.count_nonzero(tm & sm)
            if inter:
                iou[a, b] = inter / np.count_nonzero(tm | sm)
    aps, result = [], {}
    for t in IOU_THRESHOLDS:
        ok = iou >= t
        rows, cols = linear_sum_assignment(-ok.astype(float))
        matched = [(r, c) for r, c in zip(rows, cols) if ok[r, c]]
        tp = len(matched)
        fp, fn = len(s_ids) - tp, len(t_ids) - tp
        aps.append(tp / (tp + fp + fn))
        if t == 0.5:
            result = {"precision": tp / (tp + fp), "recall": tp / (tp + fn),
                      "f1": 2 * tp / (2 * tp + fp + fn),
                      "mean_matched_iou": float(np.mean([iou[r, c] for r, c in matched]))}
    return {"voi_split": split, "voi_merge": merge, "voi": split + merge,
            "adapted_rand_error": cremi_adapted_rand(seg, truth), **result,
            "ap50": aps[0], "map": float(np.mean(aps))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    seg, truth = make_input()
    mvox = seg.size / 1e6
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        fast = instance_metrics(seg, truth)
        times.append(time.perf_counter() - t0)
    best = min(times)
    t0 = time.perf_counter()
    ref = naive(seg, truth)
    t_naive = time.perf_counter() - t0
    worst = max(abs(fast[k] - ref[k]) for k in ref if not math.isnan(ref[k]))
    print(f"input: {SHAPE} uint64, {len(np.unique(truth)) - 1} truth objects, "
          f"{len(np.unique(seg)) - 1} segments, one core; max |fast - naive| over "
          f"{len(ref)} metrics = {worst:.1e}")
    print("metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in fast.items()))
    print(f"fast  (instance_metrics, one table): best of {args.repeats} {best * 1e3:7.1f} ms  "
          f"{mvox / best:7.1f} Mvoxel/s")
    print(f"naive (skimage VOI, CREMI ARAND, mask IoUs): {t_naive * 1e3:9.1f} ms  "
          f"{mvox / t_naive:7.3f} Mvoxel/s")
    print(f"speed-up: {t_naive / best:.0f}x; fast <= 50 ms: {best <= 0.05}")


if __name__ == "__main__":
    main()
