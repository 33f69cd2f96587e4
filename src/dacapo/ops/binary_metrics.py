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

Cost: two exact EDTs (``edt``, one thread) on the bounding box of S ∪ T, a few counts.
The nearest T voxel of any voxel lies in T, so cropping to the bounding box of S ∪ T does
not change any distance we read (EDT with ``black_border=False``).

References: Dice (1945); Jaccard (1912); Huttenlocher et al., "Comparing images using the
Hausdorff distance", TPAMI 1993; Meilă, "Comparing clusterings", JMVA 2007 (VOI).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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


def distance_to(mask: np.ndarray, voxel_size: Sequence[float]) -> np.ndarray:
    """dist_X(v) in world units: distance from each voxel centre to the nearest voxel of
    ``mask`` (0 inside it); ``inf`` everywhere if ``mask`` is empty. Exact anisotropic EDT."""
    outside = np.logical_not(mask).view(np.uint8)
    anisotropy = tuple(float(v) for v in voxel_size)
    return edt.edt(
        np.ascontiguousarray(outside),
        anisotropy=anisotropy[0] if len(anisotropy) == 1 else anisotropy,
        black_border=False,
        parallel=1,
    )


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


def _empty_result(s_size: int, t_size: int) -> dict[str, float]:
    """Scores when S or T is empty (the conventions above)."""
    result = dict.fromkeys(BINARY_METRIC_NAMES, NAN)
    if s_size == 0 and t_size == 0:
        result["hausdorff"] = 0.0
    else:
        result["dice"] = 0.0
        result["jaccard"] = 0.0
    return result


def binary_metrics(
    test: np.ndarray,
    truth: np.ndarray,
    voxel_size: Sequence[float],
    tol_distance: float,
    clip_distance: float,
) -> dict[str, float]:
    """All 21 binary metrics (see the module docstring) of ``test`` (S) against ``truth``
    (T), both boolean arrays of the same shape; distances in world units of ``voxel_size``
    (array axis order)."""
    test = np.asarray(test, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    _check_inputs(test, truth, voxel_size)
    n = test.size
    s_size = int(np.count_nonzero(test))
    t_size = int(np.count_nonzero(truth))
    if s_size == 0 or t_size == 0:
        return _empty_result(s_size, t_size)

    box = _bounding_box(test | truth)
    s, t = test[box], truth[box]
    tp = int(np.count_nonzero(s & t))
    fp = s_size - tp
    fn = t_size - tp
    union = tp + fp + fn
    background = n - t_size

    # false positive distances: dist_T on S; false negative distances: dist_S on T
    fp_dist = distance_to(t, voxel_size)[s].astype(np.float64)
    fn_dist = distance_to(s, voxel_size)[t].astype(np.float64)

    fp_tol = int(np.count_nonzero(fp_dist > tol_distance))
    fn_tol = int(np.count_nonzero(fn_dist > tol_distance))
    tp_tol = union - fp_tol - fn_tol

    precision = tp / s_size
    recall = tp / t_size
    precision_tol = _div(tp_tol, tp_tol + fp_tol)
    recall_tol = _div(tp_tol, tp_tol + fn_tol)
    mfp = float(fp_dist.sum()) / s_size
    mfn = float(fn_dist.sum()) / t_size
    mfp_c = float(np.minimum(fp_dist, clip_distance).sum()) / s_size
    mfn_c = float(np.minimum(fn_dist, clip_distance).sum()) / t_size

    return {
        "dice": 2 * tp / (s_size + t_size),
        "jaccard": tp / union,
        "hausdorff": float(max(fp_dist.max(), fn_dist.max())),
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
