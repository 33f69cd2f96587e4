"""Instance evaluation against the original DaCapo (the peer), side by side in one run.

Ours: `instance_metrics` (VOI split/merge, adapted Rand error, IoU matching at 0.5:0.95 — one
sparse contingency table over the voxels, ids relabelled with fastremap, no per-object pass),
the kernel and the whole `InstanceEvaluator.evaluate` on funlib Arrays. The peer: its whole
instance evaluation, ``instance_evaluator.voi`` (VOI only), in its own venv through a
persistent subprocess (`_harness.Peer`). Ours and the peer's calls alternate, so both see the same
machine load; medians of ``--repeats``. Goal: all our metrics faster than the peer's VOI alone.

Cases (large sparse ids, as real label volumes have): the FIB-SEM neuron labels of
``fibsem_neurons`` (`_harness.data_dir`; 1 Mvoxel, 87 objects) and a synthetic 100³ volume with
100 objects, ids mapped to random values ≥ 100000 (below 2**20: the peer's VOI allocates a
sparse matrix of max id + 1 rows and is killed for memory at ids ~1e9). Segmentation: the
truth shifted by one voxel along z, 10 objects split in two, 5 pairs merged, 1 % (real) or
3 % (synthetic) of the voxels given a random segment id. Our values are checked against a
naive reference of the definitions (skimage VOI, the CREMI adapted Rand code, IoU of every
truth/segment pair from boolean masks + linear assignment per threshold), not the peer (its
VOI treats truth 0 as a segment).

Run: ``.venv/bin/python benchmarks/bench_instance_eval.py [--repeats 9]``.
"""

from __future__ import annotations

import argparse
import math
import os

import numpy as np
import tifffile
from _harness import dataset, open_peer, pin_threads, timed
from funlib.persistence import Array
from scipy import ndimage, sparse
from scipy.optimize import linear_sum_assignment
from skimage.metrics import variation_of_information

from dacapo.experiments.tasks.evaluators import InstanceEvaluator
from dacapo.ops.instance_metrics import IOU_THRESHOLDS, instance_metrics

SHAPE = (100, 100, 100)


def perturb(truth: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """The truth shifted by one voxel along z, 10 objects split in two along x, 5 pairs
    merged, a fraction ``noise`` of the voxels given a random one of the segment ids."""
    seg = np.roll(truth, 1, axis=0).copy()
    labels = np.unique(truth)[1:]
    half = np.arange(truth.shape[2]) < truth.shape[2] // 2
    for label in rng.choice(labels, 10, replace=False):  # splits
        seg[(seg == label) & half[None, None, :]] = int(label) + 1000
    for a, b in rng.choice(labels, (5, 2), replace=False):  # merges
        seg[seg == b] = a
    flip = rng.random(truth.shape) < noise
    seg[flip] = rng.choice(np.unique(seg), int(flip.sum()))
    return seg


def large_ids(*arrays: np.ndarray, seed: int = 0) -> list[np.ndarray]:
    """The arrays with their ids (one mapping for all, 0 kept) sent to random distinct
    uint64 values in [100000, 2**20)."""
    ids = np.unique(np.concatenate([np.unique(a) for a in arrays]))
    rng = np.random.default_rng(seed)
    values = np.sort(rng.choice(2**20 - 100000, len(ids), replace=False) + 100000)
    values = values.astype(np.uint64)
    values[ids == 0] = 0
    return [values[np.searchsorted(ids, a)] for a in arrays]


def make_input(seed: int = 0, large: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic: 100 objects (Voronoi cells of random seeds within 14 voxels), 3 % noise;
    ids ≥ 100000 (``large``) or the small ones 1..1100 (the peer's best case)."""
    rng = np.random.default_rng(seed)
    num = 100
    seeds = np.zeros(SHAPE, np.uint64)
    points = np.stack([rng.integers(0, s, num) for s in SHAPE], axis=1)
    seeds[tuple(points.T)] = np.arange(1, num + 1)
    dist, idx = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    truth = seeds[tuple(idx)]
    truth[dist > 14] = 0
    seg = perturb(truth, 0.03, rng)
    return large_ids(seg, truth, seed=seed) if large else (seg, truth)


def real_input(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """FIB-SEM neuron labels (50x100x200, 0 = boundary/unknown), 1 % noise."""
    truth = tifffile.imread(dataset("fibsem_neurons") / "labels.tif").astype(np.uint64)
    seg = perturb(truth, 0.01, np.random.default_rng(seed))
    seg, truth = large_ids(seg, truth, seed=seed)
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


def _compact(labels: np.ndarray) -> np.ndarray:
    """Ids renumbered 0..k-1 keeping 0 (skimage and the CREMI code size tables by max id)."""
    _, inverse = np.unique(labels, return_inverse=True)
    return (inverse.reshape(labels.shape) + (0 if labels.min() == 0 else 1)).astype(np.int64)


def run_case(name: str, seg: np.ndarray, truth: np.ndarray, repeats: int, peer) -> dict:
    evaluator = InstanceEvaluator()
    seg_array = Array(seg, offset=(0,) * seg.ndim, voxel_size=(1,) * seg.ndim)
    truth_array = Array(truth, offset=(0,) * seg.ndim, voxel_size=(1,) * seg.ndim)
    ours, ours_eval, theirs = [], [], []
    for _ in range(repeats):
        seconds, fast = timed(lambda: instance_metrics(seg, truth))
        ours.append(seconds)
        ours_eval.append(timed(lambda: evaluator.evaluate(seg_array, truth_array))[0])
        if peer is not None:
            theirs += peer.run("voi", {"seg": seg, "truth": truth}).times
    ref = naive(_compact(seg), _compact(truth))
    worst = max(abs(fast[k] - ref[k]) for k in ref if not math.isnan(ref[k]))
    row = {"case": name, "ours": float(np.median(ours)), "evaluator": float(np.median(ours_eval)),
           "peer": float(np.median(theirs)) if theirs else math.nan, "worst": worst}
    print(f"{name}: {seg.shape} uint64, {len(np.unique(truth)) - 1} truth objects, "
          f"{len(np.unique(seg)) - 1} segments, ids up to {int(max(seg.max(), truth.max()))}; "
          f"max |ours - definition| over {len(ref)} metrics = {worst:.1e}")
    print(f"  ours, all {len(fast)} metrics (instance_metrics): {row['ours'] * 1e3:7.1f} ms;"
          f"  InstanceEvaluator.evaluate: {row['evaluator'] * 1e3:7.1f} ms")
    if theirs:
        print(f"  peer, VOI only (instance_evaluator.voi): {row['peer'] * 1e3:7.1f} ms;  "
              f"ratio peer / ours = {row['peer'] / row['ours']:.1f}x (evaluator "
              f"{row['peer'] / row['evaluator']:.1f}x); goal: > 1x")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    cases = {
        "fibsem_neurons (real), ids >= 1e5": real_input(),
        "synthetic 100^3, ids >= 1e5": make_input(),
        "synthetic 100^3, small ids": make_input(large=False),
    }
    with open_peer() as peer:
        for name, (seg, truth) in cases.items():
            run_case(name, seg, truth, args.repeats, peer)
    print(f"one core for ours; load average {os.getloadavg()[0]:.2f} "
          f"(1 min, {os.cpu_count()} cores)")


if __name__ == "__main__":
    pin_threads()
    main()
