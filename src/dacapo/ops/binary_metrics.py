"""Binary segmentation metrics of one channel, numpy in, floats out.

Notation: T = truth foreground, S = test foreground (voxel sets), |·| = voxel count,
TP = |S ∩ T|, FP = |S ∖ T|, FN = |T ∖ S|, background = voxels not in T (|bg| = N − |T|).
``dist_X(v)`` = Euclidean distance in world units between the centre of voxel v and the
centre of the nearest voxel of X (0 inside X); the voxel size is given in the array's own
axis order (anisotropic voxels are exact: it is the exact anisotropic EDT of ``edt``).

Metrics (all floats):

- dice = 2 TP / (|S| + |T|),  jaccard = TP / |S ∪ T|
- hausdorff = max(max_{v∈S} dist_T(v), max_{v∈T} dist_S(v))  (symmetric Hausdorff)
- false_negative_rate = FN / |T|,  false_discovery_rate = FP / |S|,
  false_positive_rate = FP / |bg|,  precision = TP / |S|,  recall = TP / |T|,
  f1_score = 2 P R / (P + R)
- voi = H(S | T) + H(T | S) in bits, the variation of information between the two
  two-segment partitions {S, not S} and {T, not T} of the whole array (background is a
  segment, nothing is ignored); the sum is not halved (as in the instance evaluator).
- false positive distances = dist_T(v) for v ∈ S (0 for v ∈ S ∩ T), false negative
  distances = dist_S(v) for v ∈ T; mean_false_positive_distance / _negative_ are their means
  over S / T, mean_false_distance = their average; ``*_clipped``: each distance is first
  clipped at ``clip_distance``.
- FP_tol = #{v ∈ S : dist_T(v) > tol},  FN_tol = #{v ∈ T : dist_S(v) > tol},
  TP_tol = |S ∪ T| − FP_tol − FN_tol;  false_positive_rate_with_tolerance = FP_tol / |bg|,
  false_negative_rate_with_tolerance = FN_tol / |T|,
  precision_with_tolerance = TP_tol / (TP_tol + FP_tol),
  recall_with_tolerance = TP_tol / (TP_tol + FN_tol), f1_score_with_tolerance from those.

Empty masks: dice and jaccard are NaN when both S and T are empty (and 0 when
exactly one is); hausdorff is 0 when both are empty and NaN when exactly one is; every other
metric is NaN when either mask is empty. An F1 with precision = recall = 0 is NaN. Any other
0/0 or x/0 (e.g. false_positive_rate when T fills the array) is NaN.

Cost: two exact squared EDTs (``edt``, one thread by default) on the bounding box of S ∪ T,
square roots on the false voxels only, a few counts.
The nearest T voxel of any voxel lies in T, so cropping to the bounding box of S ∪ T does
not change any distance we read (EDT with ``black_border=False``).

Blockwise: `binary_stats` reduces a region (a block read with a context) to additive sums
(`BinaryStats`, merged by `merge_binary_stats`) from which `metrics_from_stats` gives the 21
metrics; ``binary_metrics`` is that on the whole array.

References: Dice (1945); Jaccard (1912); Huttenlocher et al., "Comparing images using the
Hausdorff distance", TPAMI 1993; Meilă, "Comparing clusterings", JMVA 2007 (VOI).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import edt
import numpy as np

#: The metric names, in a fixed order.
BINARY_METRIC_NAMES: tuple[str, ...] = (
    "dice",
    "jaccard",
    "hausdorff",
    "false_negative_rate",
    "false_negative_rate_with_tolerance",
    "false_discovery_rate",
    "false_positive_rate",
    "false_positive_rate_with_tolerance",
    "precision",
    "recall",
    "f1_score",
    "precision_with_tolerance",
    "recall_with_tolerance",
    "f1_score_with_tolerance",
    "voi",
    "mean_false_positive_distance",
    "mean_false_negative_distance",
    "mean_false_distance",
    "mean_false_positive_distance_clipped",
    "mean_false_negative_distance_clipped",
    "mean_false_distance_clipped",
)

NAN = math.nan


def _div(a: float, b: float) -> float:
    """a / b, NaN when b == 0."""
    return a / b if b != 0 else NAN


def _f1(precision: float, recall: float) -> float:
    """Harmonic mean 2PR/(P+R); NaN when P + R == 0 or either is NaN."""
    if math.isnan(precision) or math.isnan(recall) or precision + recall == 0:
        return NAN
    return 2 * precision * recall / (precision + recall)


def _entropy(counts: Sequence[float], n: float) -> float:
    """Shannon entropy in bits of the distribution counts / n (0 log 0 = 0)."""
    h = 0.0
    for c in counts:
        if c > 0:
            p = c / n
            h -= p * math.log2(p)
    return h


def binary_voi(tp: int, fp: int, fn: int, n: int) -> float:
    """VOI (bits) between partitions {S, ¬S} and {T, ¬T} of n voxels.

    VOI = H(S|T) + H(T|S) = 2 H(S,T) − H(S) − H(T) (Meilă 2007); the joint table is
    [[TP, FP], [FN, TN]] with TN = n − TP − FP − FN.
    """
    tn = n - tp - fp - fn
    h_joint = _entropy((tp, fp, fn, tn), n)
    h_s = _entropy((tp + fp, fn + tn), n)
    h_t = _entropy((tp + fn, fp + tn), n)
    return max(2 * h_joint - h_s - h_t, 0.0)


def squared_distance_to(
    mask: np.ndarray, voxel_size: Sequence[float], threads: int = 1
) -> np.ndarray:
    """dist_X(v)² in world units² (see `distance_to`), float32; exact anisotropic squared
    EDT (``edt.edtsq`` with ``threads`` threads); ``inf`` everywhere if ``mask`` is empty."""
    outside = np.logical_not(mask).view(np.uint8)
    anisotropy = tuple(float(v) for v in voxel_size)
    return edt.edtsq(
        np.ascontiguousarray(outside),
        anisotropy=anisotropy[0] if len(anisotropy) == 1 else anisotropy,
        black_border=False,
        parallel=threads,
    )


def distance_to(mask: np.ndarray, voxel_size: Sequence[float], threads: int = 1) -> np.ndarray:
    """dist_X(v) in world units: distance from each voxel centre to the nearest voxel of
    ``mask`` (0 inside it); ``inf`` everywhere if ``mask`` is empty. Exact anisotropic EDT."""
    return np.sqrt(squared_distance_to(mask, voxel_size, threads))


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """Slices of the smallest box containing every True voxel (mask must be non-empty)."""
    slices = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        slices.append(slice(int(idx[0]), int(idx[-1]) + 1))
    return tuple(slices)


def _check_inputs(test: np.ndarray, truth: np.ndarray, voxel_size: Sequence[float]) -> None:
    if test.shape != truth.shape:
        raise ValueError(f"binary_metrics: test shape {test.shape} != truth shape {truth.shape}")
    if len(voxel_size) != test.ndim:
        raise ValueError(
            f"binary_metrics: voxel_size {tuple(voxel_size)} has {len(voxel_size)} dims, "
            f"arrays have {test.ndim}"
        )
    if test.ndim not in (1, 2, 3):
        raise ValueError(f"binary_metrics: arrays must be 1D, 2D or 3D, got {test.ndim}D")


class BinaryStats(NamedTuple):
    """Sums over voxels from which every binary metric follows (`metrics_from_stats`).

    Additive over disjoint regions (the maxima combine by max, see `merge_binary_stats`), so
    a volume can be scored block by block. Distances (world units) are those of the module
    docstring: ``fp_*`` over v ∈ S of dist_T(v), ``fn_*`` over v ∈ T of dist_S(v). A
    distance that could only be bounded (beyond the exact radius of `binary_stats`) counts
    in ``fp_far`` / ``fn_far`` and not in the unclipped sums and maxima.
    """

    num_voxels: int = 0
    test_size: int = 0  # |S|
    truth_size: int = 0  # |T|
    tp: int = 0  # |S ∩ T|
    fp_tol: int = 0  # #{v ∈ S : dist_T(v) > tol}
    fn_tol: int = 0  # #{v ∈ T : dist_S(v) > tol}
    fp_sum: float = 0.0
    fn_sum: float = 0.0
    fp_sum_clipped: float = 0.0
    fn_sum_clipped: float = 0.0
    fp_max: float = 0.0
    fn_max: float = 0.0
    fp_far: int = 0
    fn_far: int = 0


def merge_binary_stats(stats: Iterable[BinaryStats]) -> BinaryStats:
    """The `BinaryStats` of the union of disjoint regions: sums add, maxima take the max."""
    total = BinaryStats()
    for part in stats:
        total = BinaryStats(
            *(
                max(a, b) if name in ("fp_max", "fn_max") else a + b
                for name, a, b in zip(BinaryStats._fields, total, part)
            )
        )
    return total


def _distance_stats(
    dist: np.ndarray, tol_distance: float, clip_distance: float, exact_radius: float
) -> tuple[int, float, float, float, int]:
    """(count > tol, exact sum, clipped sum, exact max, far count) of distances ``dist``
    (float32 from the EDT); a distance above ``exact_radius`` is only known to exceed it."""
    if dist.size == 0:
        return 0, 0.0, 0.0, 0.0, 0
    dist = dist.astype(np.float64)
    above_tol = int(np.count_nonzero(dist > tol_distance))
    clipped = float(np.minimum(dist, clip_distance).sum())
    if math.isinf(exact_radius):
        return above_tol, float(dist.sum()), clipped, float(dist.max()), 0
    near = dist[dist <= exact_radius]
    top = float(near.max()) if near.size else 0.0
    return above_tol, float(near.sum()), clipped, top, int(dist.size - near.size)


def binary_stats(
    test: np.ndarray,
    truth: np.ndarray,
    voxel_size: Sequence[float],
    tol_distance: float,
    clip_distance: float,
    region: tuple[slice, ...] | None = None,
    exact_radius: float = math.inf,
    threads: int = 1,
) -> BinaryStats:
    """`BinaryStats` of the voxels in ``region`` (slices of the arrays; all by default) of
    ``test`` (S) against ``truth`` (T), boolean arrays of one shape.

    Distances are measured inside the given arrays (a block read with a context around
    ``region``): they are exact for the voxels whose nearest voxel of the other mask lies in
    the arrays, in particular for every distance ≤ ``exact_radius`` when the arrays reach at
    least that far (world units) around ``region`` on every side. For a larger distance
    the measured one only bounds it from above: with ``exact_radius`` ≥ max(clip, tol) the
    clipped sums and tolerance counts stay exact, and such voxels are counted as far
    (``fp_far`` / ``fn_far``) instead of entering the unclipped sums and maxima.
    """
    test = np.asarray(test, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    _check_inputs(test, truth, voxel_size)
    region = tuple(slice(None) for _ in range(test.ndim)) if region is None else region
    s_reg, t_reg = test[region], truth[region]
    s_size = int(np.count_nonzero(s_reg))
    t_size = int(np.count_nonzero(t_reg))
    tp = int(np.count_nonzero(s_reg & t_reg))
    stats = dict(num_voxels=int(s_reg.size), test_size=s_size, truth_size=t_size, tp=tp)
    if s_size == tp and t_size == tp:  # no false voxel: every distance is 0
        return BinaryStats(**stats)

    # distances on the bounding box of S ∪ T (the nearest voxel of a mask lies in it)
    box = _bounding_box(test | truth)
    inner = []  # region in box coordinates (S and T voxels of the region lie in the box)
    for axis, (b, r) in enumerate(zip(box, region)):
        start, stop, _ = r.indices(test.shape[axis])
        inner.append(slice(max(start, b.start) - b.start, max(min(stop, b.stop), b.start) - b.start))
    inner = tuple(inner)
    s, t = test[box], truth[box]
    s_in, t_in = s[inner], t[inner]
    fp_mask = s_in & ~t_in
    fn_mask = t_in & ~s_in
    if fp_mask.any():  # false positive distances: dist_T on S (0 on S ∩ T)
        fp = _distance_stats(
            np.sqrt(squared_distance_to(t, voxel_size, threads)[inner][fp_mask]),
            tol_distance, clip_distance, exact_radius,
        )
    else:
        fp = (0, 0.0, 0.0, 0.0, 0)
    if fn_mask.any():  # false negative distances: dist_S on T
        fn = _distance_stats(
            np.sqrt(squared_distance_to(s, voxel_size, threads)[inner][fn_mask]),
            tol_distance, clip_distance, exact_radius,
        )
    else:
        fn = (0, 0.0, 0.0, 0.0, 0)
    return BinaryStats(
        **stats,
        fp_tol=fp[0], fn_tol=fn[0],
        fp_sum=fp[1], fn_sum=fn[1],
        fp_sum_clipped=fp[2], fn_sum_clipped=fn[2],
        fp_max=fp[3], fn_max=fn[3],
        fp_far=fp[4], fn_far=fn[4],
    )


def _empty_result(s_size: int, t_size: int) -> dict[str, float]:
    """Scores when S or T is empty (the conventions above)."""
    result = dict.fromkeys(BINARY_METRIC_NAMES, NAN)
    if s_size == 0 and t_size == 0:
        result["hausdorff"] = 0.0
    else:
        result["dice"] = 0.0
        result["jaccard"] = 0.0
    return result


def metrics_from_stats(stats: BinaryStats) -> dict[str, float]:
    """All 21 binary metrics (module docstring) from the `BinaryStats` of the whole volume.

    If some distances were only bounded (``fp_far`` / ``fn_far`` > 0) the metrics that need
    them exactly (hausdorff and the unclipped mean distances) are NaN; clipped and
    tolerance metrics stay exact (`binary_stats` with ``exact_radius`` ≥ clip and tol).
    """
    s_size, t_size, tp = stats.test_size, stats.truth_size, stats.tp
    if s_size == 0 or t_size == 0:
        return _empty_result(s_size, t_size)
    n = stats.num_voxels
    fp = s_size - tp
    fn = t_size - tp
    union = tp + fp + fn
    background = n - t_size
    fp_tol, fn_tol = stats.fp_tol, stats.fn_tol
    tp_tol = union - fp_tol - fn_tol

    precision = tp / s_size
    recall = tp / t_size
    precision_tol = _div(tp_tol, tp_tol + fp_tol)
    recall_tol = _div(tp_tol, tp_tol + fn_tol)
    exact = stats.fp_far == 0 and stats.fn_far == 0
    mfp = stats.fp_sum / s_size if stats.fp_far == 0 else NAN
    mfn = stats.fn_sum / t_size if stats.fn_far == 0 else NAN
    mfp_c = stats.fp_sum_clipped / s_size
    mfn_c = stats.fn_sum_clipped / t_size

    return {
        "dice": 2 * tp / (s_size + t_size),
        "jaccard": tp / union,
        "hausdorff": float(max(stats.fp_max, stats.fn_max)) if exact else NAN,
        "false_negative_rate": fn / t_size,
        "false_negative_rate_with_tolerance": fn_tol / t_size,
        "false_discovery_rate": fp / s_size,
        "false_positive_rate": _div(fp, background),
        "false_positive_rate_with_tolerance": _div(fp_tol, background),
        "precision": precision,
        "recall": recall,
        "f1_score": _f1(precision, recall),
        "precision_with_tolerance": precision_tol,
        "recall_with_tolerance": recall_tol,
        "f1_score_with_tolerance": _f1(precision_tol, recall_tol),
        "voi": binary_voi(tp, fp, fn, n),
        "mean_false_positive_distance": mfp,
        "mean_false_negative_distance": mfn,
        "mean_false_distance": (mfp + mfn) / 2,
        "mean_false_positive_distance_clipped": mfp_c,
        "mean_false_negative_distance_clipped": mfn_c,
        "mean_false_distance_clipped": (mfp_c + mfn_c) / 2,
    }


def binary_metrics(
    test: np.ndarray,
    truth: np.ndarray,
    voxel_size: Sequence[float],
    tol_distance: float,
    clip_distance: float,
    threads: int = 1,
) -> dict[str, float]:
    """All 21 binary metrics (see the module docstring) of ``test`` (S) against ``truth``
    (T), both boolean arrays of the same shape; distances in world units of ``voxel_size``
    (array axis order); ``threads`` for the two EDTs."""
    stats = binary_stats(test, truth, voxel_size, tol_distance, clip_distance, threads=threads)
    return metrics_from_stats(stats)
