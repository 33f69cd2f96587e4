"""Object-matching metrics at IoU thresholds, as StarDist and Cellpose users compare them.

Objects are the non-zero labels of a predicted and a ground-truth (GT) instance label image
(2D or 3D, 0 = background). With n_ij the voxels shared by GT object i and predicted object
j (the contingency table of `instance_metrics.contingency_table`, never a loop over objects)
and |i|, |j| whole object sizes:

    IoU(i, j) = n_ij / (|i| + |j| - n_ij)

Matching at threshold τ (0 < τ <= 1): a pair may match if IoU >= τ (and n_ij > 0); each
object matches at most once. The matching has the most pairs (as StarDist's), and among
those the largest total IoU of the matched pairs (StarDist's tie-break, cost -[IoU >= τ] -
IoU / 2n, also counts the IoU of assigned pairs below τ; TP is the same either way). For
τ >= 0.5 the candidates are almost unique (IoU >= 0.5 needs n_ij >= |i| / 2 and |j| / 2, so
an object has two candidates only if they are its two exact halves at IoU = 0.5 each) and
the matching is read off the candidate pairs; for τ < 0.5, and for those ties, it is the
optimal (Hungarian) assignment, solved per connected component of the candidate graph.

Counts and scores at τ (TP = matched pairs, FP = unmatched predictions, FN = unmatched GT):

    precision = TP / (TP + FP),  recall = TP / (TP + FN),  f1 = 2TP / (2TP + FP + FN)
    ap = TP / (TP + FP + FN)      (StarDist's "accuracy", the DSB2018 "average precision")
    mean_matched_iou = (sum of the matched pairs' IoU) / TP

``*_mean`` is the mean over τ ∈ {0.5, 0.55, ..., 0.95} (`IOU_THRESHOLDS`). Over a data
set (StarDist's ``matching_dataset`` with ``by_image=False``), TP, FP, FN and the IoU sum
add up over images first (`add_counts`), then the ratios are taken.

Empty cases: a ratio with a zero denominator is NaN (StarDist returns 0 there). So with no
GT object recall is NaN and precision, f1, ap are 0 (if there are predictions); with no
prediction precision is NaN and recall, f1, ap are 0; both empty: all NaN.
mean_matched_iou is NaN without matches.

Reference: Schmidt et al., "Cell detection with star-convex polygons", MICCAI 2018, and
``stardist/matching.py`` (``matching``, ``matching_dataset``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from dacapo.ops.instance_metrics import (
    IOU_THRESHOLDS,
    Contingency,
    check_labels,
    contingency_table,
)

__all__ = [
    "IOU_THRESHOLDS",
    "MatchCounts",
    "add_counts",
    "assign_pairs",
    "match_counts",
    "match_counts_from_table",
    "object_matching",
    "pair_ious",
    "scores_from_counts",
]


class MatchCounts(NamedTuple):
    """Matching counts at one IoU ``threshold``; additive over images (`add_counts`)."""

    threshold: float
    tp: int
    fp: int
    fn: int
    sum_matched_iou: float


def pair_ious(table: Contingency) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(GT index, prediction index, IoU) of every overlapping pair of non-zero objects
    (indices are the table's compact ids)."""
    both = (table.rows != 0) & (table.cols != 0)
    rows, cols, inter = table.rows[both], table.cols[both], table.counts[both]
    iou = inter / (table.truth_sizes[rows] + table.seg_sizes[cols] - inter)
    return rows, cols, iou.astype(np.float64)


def assign_pairs(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Boolean mask of the candidate edges (rows[k], cols[k]) in a one-to-one matching of
    maximum total weight (weights > 0; each (row, col) pair at most once).

    Edges that share no end with another edge are taken directly; every other connected
    component of the bipartite candidate graph is solved by ``linear_sum_assignment``.
    """
    chosen = np.zeros(len(rows), dtype=bool)
    if len(rows) == 0:
        return chosen
    _, r = np.unique(rows, return_inverse=True)
    _, c = np.unique(cols, return_inverse=True)
    row_degree, col_degree = np.bincount(r), np.bincount(c)
    alone = (row_degree[r] == 1) & (col_degree[c] == 1)
    chosen[alone] = True
    rest = np.flatnonzero(~alone)
    if len(rest) == 0:
        return chosen
    n_rows = len(row_degree)
    nodes = n_rows + len(col_degree)
    graph = coo_matrix((np.ones(len(rest)), (r[rest], n_rows + c[rest])), shape=(nodes, nodes))
    _, component = connected_components(graph, directed=False)
    edge_component = component[r[rest]]
    order = np.argsort(edge_component, kind="stable")
    starts = np.flatnonzero(np.diff(edge_component[order], prepend=-1))
    for edges in np.split(rest[order], starts[1:]):
        er, row_of = np.unique(r[edges], return_inverse=True)
        ec, col_of = np.unique(c[edges], return_inverse=True)
        dense = np.zeros((len(er), len(ec)))
        index = np.full((len(er), len(ec)), -1)
        dense[row_of, col_of] = weights[edges]
        index[row_of, col_of] = edges
        ri, ci = linear_sum_assignment(dense, maximize=True)
        picked = index[ri, ci]
        chosen[picked[picked >= 0]] = True
    return chosen


def _counts_at(
    rows: np.ndarray, cols: np.ndarray, iou: np.ndarray, threshold: float, n_truth: int,
    n_pred: int,
) -> MatchCounts:
    ok = iou >= threshold
    r, c, v = rows[ok], cols[ok], iou[ok]
    n = min(len(np.unique(r)), len(np.unique(c)))
    chosen = assign_pairs(r, c, 1.0 + v / (2.0 * max(n, 1)))  # most pairs, then most IoU
    tp = int(chosen.sum())
    return MatchCounts(float(threshold), tp, n_pred - tp, n_truth - tp, float(v[chosen].sum()))


def match_counts_from_table(
    table: Contingency, thresholds: Sequence[float] = IOU_THRESHOLDS
) -> list[MatchCounts]:
    """`MatchCounts` at each threshold from a contingency table (GT rows, prediction
    columns; e.g. summed block by block, see `instance_metrics.table_from_pairs`)."""
    if any(not 0.0 < t <= 1.0 for t in thresholds):
        raise ValueError(f"IoU thresholds must lie in (0, 1], got {list(thresholds)}")
    n_truth = int(np.count_nonzero(table.truth_sizes[1:]))
    n_pred = int(np.count_nonzero(table.seg_sizes[1:]))
    rows, cols, iou = pair_ious(table)
    return [_counts_at(rows, cols, iou, t, n_truth, n_pred) for t in thresholds]


def match_counts(
    pred: np.ndarray, truth: np.ndarray, thresholds: Sequence[float] = IOU_THRESHOLDS
) -> list[MatchCounts]:
    """`MatchCounts` of predicted labels ``pred`` against GT labels ``truth`` (same shape,
    integer dtype) at each IoU threshold."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    check_labels(pred, "pred")
    check_labels(truth, "truth")
    return match_counts_from_table(contingency_table(pred, truth), thresholds)


def add_counts(
    a: Sequence[MatchCounts], b: Sequence[MatchCounts]
) -> list[MatchCounts]:
    """Counts of two images pooled (same thresholds in the same order)."""
    if [x.threshold for x in a] != [y.threshold for y in b]:
        raise ValueError("add_counts: the two count lists have different thresholds")
    return [
        MatchCounts(x.threshold, x.tp + y.tp, x.fp + y.fp, x.fn + y.fn,
                    x.sum_matched_iou + y.sum_matched_iou)
        for x, y in zip(a, b)
    ]


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def _key(threshold: float) -> str:
    return f"{round(threshold * 100):02d}"


def scores_from_counts(counts: Sequence[MatchCounts]) -> dict[str, float]:
    """Scores from `MatchCounts`: for each threshold τ (key suffix 100τ, e.g. ``f1_50``,
    ``ap_75``) precision, recall, f1, ap, mean_matched_iou, tp, fp, fn; and ``f1_mean``,
    ``ap_mean`` over the thresholds of `IOU_THRESHOLDS` present (NaN if one is NaN or
    none is present)."""
    out: dict[str, float] = {}
    for m in counts:
        k = _key(m.threshold)
        out[f"precision_{k}"] = _ratio(m.tp, m.tp + m.fp)
        out[f"recall_{k}"] = _ratio(m.tp, m.tp + m.fn)
        out[f"f1_{k}"] = _ratio(2 * m.tp, 2 * m.tp + m.fp + m.fn)
        out[f"ap_{k}"] = _ratio(m.tp, m.tp + m.fp + m.fn)
        out[f"mean_matched_iou_{k}"] = _ratio(m.sum_matched_iou, m.tp)
        out[f"tp_{k}"], out[f"fp_{k}"], out[f"fn_{k}"] = float(m.tp), float(m.fp), float(m.fn)
    for name in ("f1", "ap"):
        values = [out.get(f"{name}_{_key(t)}") for t in IOU_THRESHOLDS]
        present = [v for v in values if v is not None]
        ok = len(present) == len(values) and not any(math.isnan(v) for v in present)
        out[f"{name}_mean"] = float(np.mean(present)) if ok else math.nan
    return out


def object_matching(
    pred: np.ndarray, truth: np.ndarray, thresholds: Sequence[float] = IOU_THRESHOLDS
) -> dict[str, float]:
    """`scores_from_counts` of `match_counts` (see the module docstring for definitions)."""
    return scores_from_counts(match_counts(pred, truth, thresholds))
