"""Binary evaluation, all 21 metrics of one channel, against the original DaCapo (the peer)
side by side in one run.

Ours: `dacapo.ops.binary_metrics` (two ``edt`` EDTs on the bounding box of S ∪ T, one thread,
and with 2 threads — the peer's SimpleITK filters use 2 threads by default here). The peer:
``ArrayEvaluator`` and its 21 metric methods (SimpleITK overlap and Hausdorff filters, two
full scipy EDTs), in its own venv through a persistent subprocess (`_harness.Peer`); ours and
the peer's calls alternate so both see the same load; medians of ``--repeats``. Goal: ≥ 6x.

Cases (the real volumes of `_harness.data_dir`): the LM nuclei of ``lm_nuclei`` (100³, voxel 0.284 × 0.127 × 0.127 µm;
truth = nucleus mask; test = the mask shifted by one voxel along y, dilated by one voxel, one
nucleus missed and a spurious ball added), tolerance 0.5 µm, clip 2 µm; the ssTEM membranes
of ``sstem_membranes`` (a 20 × 224 × 224 crop, 50 × 4 × 4 nm; membrane
eroded/dilated by one voxel on alternate slices and shifted by one along x), tolerance 8 nm,
clip 40 nm; and a synthetic
100³ volume (voxel 8×4×4 nm, random balls; test shifted along z with 2 % of the voxels
flipped), tolerance 8 nm, clip 40 nm. Our values are checked against a naive transcription
of the definitions (two full-volume scipy EDTs), not against the peer (its false discovery
rate, precision, F1 and, for anisotropic voxels, Hausdorff are off: the peer's README beside
its setup script).

Run: ``.venv/bin/python benchmarks/bench_binary_eval.py [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os

import numpy as np
import tifffile
from _harness import dataset, open_peer, pin_threads, timed
from scipy import ndimage
from scipy.ndimage import distance_transform_edt

from dacapo.ops.binary_metrics import BINARY_METRIC_NAMES, binary_metrics, binary_voi

VOXEL = (8.0, 4.0, 4.0)


def real_input() -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """LM nuclei: (test, truth, voxel size in µm)."""
    data = dataset("lm_nuclei")
    labels = tifffile.imread(data / "1135_labels.tif")
    voxel = tuple(json.loads((data / "meta.json").read_text())["voxel_size_um_zyx"]["1135"])
    truth = labels > 0
    test = ndimage.binary_dilation(np.roll(truth, 1, axis=1))
    ids, sizes = np.unique(labels[labels > 0], return_counts=True)
    test[labels == ids[np.argsort(sizes)[len(sizes) // 2]]] = False  # a missed nucleus
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in truth.shape], indexing="ij"), -1)
    spurious = np.linalg.norm((grid - (80, 20, 20)) * np.asarray(voxel), axis=-1) < 1.5
    test |= spurious & ~truth
    return test, truth, voxel


def em_input() -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """ssTEM membranes, 20 x 224 x 224 crop (1 Mvoxel, voxel 50 x 4 x 4 nm): truth = membrane
    (label 0); test = the membrane eroded by one voxel in y/x where a slice is even, dilated
    where odd, shifted by one voxel along x."""
    labels = tifffile.imread(dataset("sstem_membranes") / "labels.tif")[:, :224, :224]
    truth = labels == 0
    cross = ndimage.generate_binary_structure(2, 1)
    test = np.stack([
        (ndimage.binary_erosion if z % 2 == 0 else ndimage.binary_dilation)(t, cross)
        for z, t in enumerate(truth)
    ])
    return np.roll(test, 1, axis=2), truth, (50.0, 4.0, 4.0)


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


def run_case(name, test, truth, voxel, tol, clip, repeats, peer) -> dict:
    ours1, ours2, theirs = [], [], []
    for _ in range(repeats):
        seconds, ours = timed(lambda: binary_metrics(test, truth, voxel, tol, clip))
        ours1.append(seconds)
        ours2.append(timed(lambda: binary_metrics(test, truth, voxel, tol, clip, threads=2))[0])
        if peer is not None:
            theirs += peer.run("binary", {"test": test, "truth": truth, "clip": clip, "tol": tol,
                                          "voxel_size": list(voxel)}).times
    ref = naive_metrics(test, truth, voxel, tol, clip)
    worst = max(
        abs(ours[m] - ref[m]) / max(abs(ref[m]), 1e-12)
        for m in BINARY_METRIC_NAMES
        if not math.isnan(ref[m])
    )
    row = {"case": name, "ours": float(np.median(ours1)), "ours2": float(np.median(ours2)),
           "peer": float(np.median(theirs)) if theirs else math.nan, "worst": worst}
    print(f"{name}: {test.shape} ({test.size / 1e6:.1f} Mvoxel), voxel {tuple(voxel)}, "
          f"|T| = {truth.sum()}, |S| = {test.sum()}; max relative |ours - definition| over "
          f"the 21 metrics = {worst:.1e}")
    print(f"  ours (edt, 1 thread) : {row['ours'] * 1e3:7.1f} ms;  2 threads: "
          f"{row['ours2'] * 1e3:7.1f} ms")
    if theirs:
        print(f"  peer (ArrayEvaluator): {row['peer'] * 1e3:7.1f} ms;  ratio peer / ours = "
              f"{row['peer'] / row['ours']:.1f}x (1 thread), {row['peer'] / row['ours2']:.1f}x "
              "(2 threads); goal >= 6x")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    test, truth, voxel = real_input()
    cases = [("lm_nuclei (real)", test, truth, voxel, 0.5, 2.0)]
    test, truth, voxel = em_input()
    cases.append(("sstem_membranes (real)", test, truth, voxel, 8.0, 40.0))
    test, truth = make_input(100)
    cases.append(("synthetic 100^3", test, truth, VOXEL, 8.0, 40.0))
    with open_peer() as peer:
        for case in cases:
            run_case(*case, args.repeats, peer)
    print(f"load average {os.getloadavg()[0]:.2f} (1 min, {os.cpu_count()} cores)")


if __name__ == "__main__":
    pin_threads()
    main()
