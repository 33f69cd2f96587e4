"""CellMap segmentation challenge scores: instance and semantic classes, crops, overall.

Reference: janelia-cellmap/cellmap-segmentation-challenge, ``src/cellmap_segmentation_
challenge/utils/eval_utils/`` (``scoring.py``, ``distance.py``, ``instance_matching.py``,
``aggregation.py``, ``config.py``) at commit f8eed75 (2026-06-12): F1 from 1:1 matching and
voxel-weighted crop/class means, the rules this module follows. Later commits of that
repository pool counts and Hausdorff terms per class and take plain means over classes.

Instance class, one crop (``pred``, ``truth``: instance labels, 0 = background; d = voxel
size per axis in nm, in the arrays' axis order):

- matching: 1:1 between GT and predicted objects, any pair with IoU > 0 may match; the
  matching maximises the total IoU (ties: more pairs), solved by the Hungarian algorithm
  (``linear_sum_assignment``) per connected component of the overlap graph (CellMap solves
  the same problem as a min-cost flow with costs (1 - IoU)). TP = matched pairs, FP =
  unmatched predictions, FN = unmatched GT objects, F1 = 2TP / (2TP + FP + FN).
- Hausdorff distance of a matched pair = max(max_{a∈A} dist(a, B), max_{b∈B} dist(b, A))
  between voxel centres in nm (the classic symmetric maximum, no percentile), from the
  exact anisotropic EDTs of the two objects on the bounding box of their union, capped at
  D_max. Every unmatched GT object and every unmatched prediction counts D_max.
  D_max = min over axes of d_k · shape_k / 2 (CellMap's ``compute_max_distance``) unless set.
- normalised distance = 1.01 ** (-HD / ‖d‖) (‖d‖ the Euclidean norm of the voxel size);
  ``normalized_hausdorff_distance`` is the mean of the normalised distances over those
  entries, ``hausdorff_distance`` the mean distance, combined_score = sqrt(F1 × that mean).
- too many objects: with n_pred / n_truth > 10 + 50 · exp(-n_truth / 5) (CellMap's
  ``ratio_cutoff``, 10 for many GT objects) the class scores F1 = 0 and combined 0 in this
  crop, distances at D_max (CellMap also zeroes tp/fp/fn; here fp = n_pred, fn = n_truth).
- empty: no GT and no prediction scores 1 (F1, normalised distance, combined; HD 0); exactly
  one side empty scores F1 = 0, combined 0, every object at D_max.
CellMap first relabels the prediction by connected components; here the labels are scored
as given (relabel upstream for that).

Semantic class, one crop: T = truth > 0, S = pred > 0, IoU = |S∩T| / |S∪T|, Dice =
2|S∩T| / (|S| + |T|); both 1 when S and T are empty.

Crops (`combine_instance_crops`, `combine_semantic_crops`): scores averaged weighted by the
crop's voxel count; tp/fp/fn summed, a class's F1 from the summed counts (1 without any
object). Overall (`overall_scores`): instance score = mean of the classes' combined_score,
semantic score = mean of their IoU, each weighted by the class's total voxels; overall =
sqrt(instance score × semantic score). When only one family is present the overall score
is that family's score (CellMap would give 0); NaN when none is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
from scipy.ndimage import find_objects

from dacapo.ops.binary_metrics import squared_distance_to
from dacapo.ops.instance_metrics import (
    Contingency,
    _compact_ids,
    _pair_counts,
    check_labels,
)
from dacapo.ops.object_matching import assign_pairs, pair_ious

__all__ = [
    "InstanceScore",
    "SemanticScore",
    "combine_instance_crops",
    "combine_semantic_crops",
    "default_max_distance",
    "match_instances",
    "normalize_distance",
    "overall_of",
    "overall_scores",
    "pair_hausdorff",
    "ratio_cutoff",
    "score_instance",
    "score_semantic",
]

#: a tie-break bonus per matched pair (CellMap's unmatched cost exceeds a match's by 1/1e6)
_PAIR_BONUS = 1e-6


class InstanceScore(NamedTuple):
    """CellMap scores of one instance class in one crop (or combined over crops)."""

    tp: int
    fp: int
    fn: int
    f1: float
    hausdorff_distance: float
    normalized_hausdorff_distance: float
    combined_score: float
    num_voxels: int
    skipped: bool  # too many predicted objects: scored 0


class SemanticScore(NamedTuple):
    """CellMap scores of one semantic class in one crop (or combined over crops)."""

    tp: int
    fp: int
    fn: int
    iou: float
    dice: float
    num_voxels: int


def default_max_distance(voxel_size: Sequence[float], shape: Sequence[int]) -> float:
    """D_max = min_k voxel_size_k · shape_k / 2 (nm)."""
    return float(min(v * s / 2.0 for v, s in zip(voxel_size, shape)))


def normalize_distance(distance: float | np.ndarray, voxel_size: Sequence[float]) -> np.ndarray:
    """1.01 ** (-distance / ‖voxel_size‖); 0 for an infinite distance."""
    d = np.asarray(distance, dtype=np.float64)
    norm = float(np.linalg.norm(np.asarray(voxel_size, dtype=np.float64)))
    return np.where(np.isinf(d), 0.0, 1.01 ** (-d / norm))


def ratio_cutoff(n_truth: int, base: float = 10.0, extra: float = 50.0,
                 decay: float = 5.0) -> float:
    """Largest allowed n_pred / n_truth: base + extra · exp(-n_truth / decay)."""
    return float(base + extra * math.exp(-n_truth / decay))


def match_instances(table: Contingency) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(GT index, prediction index, IoU) of the 1:1 matching of maximum total IoU among
    overlapping pairs (ties: more pairs); indices are the table's compact ids."""
    rows, cols, iou = pair_ious(table)
    chosen = assign_pairs(rows, cols, iou + _PAIR_BONUS)
    return rows[chosen], cols[chosen], iou[chosen]


def pair_hausdorff(a: np.ndarray, b: np.ndarray, voxel_size: Sequence[float]) -> float:
    """Symmetric Hausdorff distance (world units) between the non-empty masks ``a``, ``b``
    (same shape): exact anisotropic EDTs, no point pairs."""
    to_b = squared_distance_to(b, voxel_size)
    to_a = squared_distance_to(a, voxel_size)
    return float(np.sqrt(max(float(to_b[a].max()), float(to_a[b].max()))))


def _union_box(x: tuple[slice, ...], y: tuple[slice, ...]) -> tuple[slice, ...]:
    return tuple(slice(min(p.start, q.start), max(p.stop, q.stop)) for p, q in zip(x, y))


def _matched_distances(
    t: np.ndarray, s: np.ndarray, rows: np.ndarray, cols: np.ndarray,
    voxel_size: Sequence[float], max_distance: float,
) -> np.ndarray:
    """Capped Hausdorff distance of each matched pair (compact label images t, s)."""
    t_boxes = find_objects(t, max_label=int(rows.max()))
    s_boxes = find_objects(s, max_label=int(cols.max()))
    out = np.empty(len(rows))
    for k, (i, j) in enumerate(zip(rows.tolist(), cols.tolist())):
        box = _union_box(t_boxes[i - 1], s_boxes[j - 1])
        hd = pair_hausdorff(t[box] == i, s[box] == j, voxel_size)
        out[k] = min(hd, max_distance)
    return out


def _instance_result(tp: int, fp: int, fn: int, distances: np.ndarray,
                     voxel_size: Sequence[float], num_voxels: int,
                     skipped: bool = False) -> InstanceScore:
    if tp + fp + fn == 0:
        return InstanceScore(0, 0, 0, 1.0, 0.0, 1.0, 1.0, num_voxels, skipped)
    f1 = 0.0 if skipped else 2 * tp / (2 * tp + fp + fn)
    norm = float(np.mean(normalize_distance(distances, voxel_size)))
    combined = 0.0 if skipped else math.sqrt(f1 * norm)
    return InstanceScore(tp, fp, fn, f1, float(np.mean(distances)), norm, combined,
                         num_voxels, skipped)


def score_instance(
    pred: np.ndarray, truth: np.ndarray, voxel_size: Sequence[float],
    max_distance: float | None = None, ratio_base: float = 10.0, ratio_extra: float = 50.0,
) -> InstanceScore:
    """CellMap instance scores of ``pred`` against ``truth`` (module docstring); 2D or 3D,
    ``voxel_size`` in nm per axis; ``ratio_extra=0`` makes the object-count cutoff a flat
    ``ratio_base``."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    check_labels(pred, "pred")
    check_labels(truth, "truth")
    if pred.shape != truth.shape or len(voxel_size) != truth.ndim:
        raise ValueError(f"pred {pred.shape}, truth {truth.shape} and voxel size "
                         f"{tuple(voxel_size)} do not agree")
    if max_distance is None:
        max_distance = default_max_distance(voxel_size, truth.shape)
    t, t_ids = _compact_ids(truth)
    s, s_ids = _compact_ids(pred)
    rows, cols, counts = _pair_counts(t, len(t_ids), s, len(s_ids))
    t_sizes = np.bincount(rows, weights=counts, minlength=len(t_ids)).astype(np.int64)
    s_sizes = np.bincount(cols, weights=counts, minlength=len(s_ids)).astype(np.int64)
    table = Contingency(rows, cols, counts, t_sizes, s_sizes, int(t.size))
    n_truth = int(np.count_nonzero(t_sizes[1:]))
    n_pred = int(np.count_nonzero(s_sizes[1:]))
    n = int(truth.size)
    if n_truth and n_pred / n_truth > ratio_cutoff(n_truth, ratio_base, ratio_extra):
        far = np.full(n_truth + n_pred, max_distance)
        return _instance_result(0, n_pred, n_truth, far, voxel_size, n, skipped=True)
    m_rows, m_cols, _ = match_instances(table)
    tp = len(m_rows)
    matched = (
        _matched_distances(t.reshape(truth.shape), s.reshape(pred.shape), m_rows, m_cols,
                           voxel_size, max_distance)
        if tp else np.zeros(0)
    )
    unmatched = np.full(n_truth + n_pred - 2 * tp, max_distance)
    distances = np.concatenate([matched, unmatched])
    return _instance_result(tp, n_pred - tp, n_truth - tp, distances, voxel_size, n)


def score_semantic(pred: np.ndarray, truth: np.ndarray) -> SemanticScore:
    """CellMap semantic scores: IoU and Dice of ``pred > 0`` against ``truth > 0``."""
    s, t = np.asarray(pred) > 0, np.asarray(truth) > 0
    if s.shape != t.shape:
        raise ValueError(f"pred shape {s.shape} != truth shape {t.shape}")
    tp = int(np.count_nonzero(s & t))
    fp, fn = int(np.count_nonzero(s)) - tp, int(np.count_nonzero(t)) - tp
    iou = tp / (tp + fp + fn) if tp + fp + fn else 1.0
    dice = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    return SemanticScore(tp, fp, fn, iou, dice, int(t.size))


def _weighted(values: Sequence[float], weights: Sequence[int]) -> float:
    return float(np.average(np.asarray(values, float), weights=np.asarray(weights, float)))


def combine_instance_crops(scores: Sequence[InstanceScore]) -> InstanceScore:
    """One instance class over crops: voxel-weighted means, summed counts, F1 of the sums."""
    if not scores:
        raise ValueError("combine_instance_crops: no crops")
    w = [x.num_voxels for x in scores]
    tp, fp, fn = (sum(getattr(x, k) for x in scores) for k in ("tp", "fp", "fn"))
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    return InstanceScore(
        tp, fp, fn, f1,
        _weighted([x.hausdorff_distance for x in scores], w),
        _weighted([x.normalized_hausdorff_distance for x in scores], w),
        _weighted([x.combined_score for x in scores], w),
        sum(w), any(x.skipped for x in scores),
    )


def combine_semantic_crops(scores: Sequence[SemanticScore]) -> SemanticScore:
    """One semantic class over crops: voxel-weighted IoU and Dice, summed counts."""
    if not scores:
        raise ValueError("combine_semantic_crops: no crops")
    w = [x.num_voxels for x in scores]
    tp, fp, fn = (sum(getattr(x, k) for x in scores) for k in ("tp", "fp", "fn"))
    return SemanticScore(tp, fp, fn, _weighted([x.iou for x in scores], w),
                         _weighted([x.dice for x in scores], w), sum(w))


def overall_scores(classes: Mapping[str, InstanceScore | SemanticScore]) -> dict[str, float]:
    """overall_instance_score, overall_semantic_score and overall_score of per-class scores
    (each already combined over crops); see the module docstring."""
    inst = [x for x in classes.values() if isinstance(x, InstanceScore)]
    sem = [x for x in classes.values() if isinstance(x, SemanticScore)]
    instance = (_weighted([x.combined_score for x in inst], [x.num_voxels for x in inst])
                if inst else math.nan)
    semantic = (_weighted([x.iou for x in sem], [x.num_voxels for x in sem])
                if sem else math.nan)
    return {"overall_instance_score": instance, "overall_semantic_score": semantic,
            "overall_score": overall_of(instance, semantic)}


def overall_of(instance: float, semantic: float) -> float:
    """``sqrt(instance × semantic)``; the one that is not NaN when the other is (CellMap
    would give 0); NaN when both are."""
    if math.isnan(instance):
        return semantic
    if math.isnan(semantic):
        return instance
    return math.sqrt(instance * semantic)
