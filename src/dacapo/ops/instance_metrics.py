"""Instance segmentation metrics from one sparse contingency table.

Notation: ``truth`` T and ``seg`` S are integer label arrays of one shape; n_ij = number of
voxels with truth label i and segment label j (the contingency table, built once, sparse).

VOI (Meila 2007; CREMI ``voi``), in bits, on the voxels with truth != 0 only (GT label 0 is
unlabelled and ignored; segment label 0 is an ordinary segment there). With N = sum over
i != 0 of n_ij, p_ij = n_ij / N, p_i = sum_j p_ij, q_j = sum_{i != 0} p_ij:

    voi_split = H(S|T) = -sum p_ij log2(p_ij / p_i)     (rises when objects are split)
    voi_merge = H(T|S) = -sum p_ij log2(p_ij / q_j)     (rises when objects are merged)
    voi       = voi_split + voi_merge

Adapted Rand error, exactly the CREMI ``adapted_rand`` / SNEMI3D (Arganda-Carreras et al.
2015) formula: rows i = 0 of the table are dropped, segment 0 voxels on labelled truth are
singletons. With n = total number of voxels (including truth 0), a_i = sum_j n_ij (i != 0),
b_j = sum_{i != 0} n_ij (j != 0), c = sum_{i != 0} n_i0:

    sumA  = sum a_i^2,   sumB = sum b_j^2 + c / n,   sumAB = sum_{i,j != 0} n_ij^2 + c / n
    P = sumAB / sumB,  R = sumAB / sumA,  adapted_rand_error = 1 - 2PR / (P + R)

(The ``c / n`` singleton term is the reference code's; it vanishes when no labelled voxel
has segment 0.)

Matching (stardist / cellpose convention): objects are the non-zero labels of each array;
IoU(i, j) = n_ij / (|i| + |j| - n_ij) with whole object sizes (segment voxels on truth 0
count). A pair matches at threshold t if IoU >= t, one-to-one. For t >= 0.5 a truth object
has at most one partner with IoU > 0.5 (n_ij > |i| / 2 and > |j| / 2), so matching is read
off directly; ties at IoU == 0.5 exactly are resolved by a maximum bipartite matching.
TP = matched pairs, FP = unmatched segments, FN = unmatched truth objects:

    precision = TP / (TP + FP), recall = TP / (TP + FN), f1 = 2TP / (2TP + FP + FN)
    ap50 = TP / (TP + FP + FN) at t = 0.5,  map = mean of that over t = 0.5, 0.55, ..., 0.95
    mean_matched_iou = mean IoU of the pairs matched at t = 0.5

Edge cases: a ratio with a zero denominator is NaN. So with no labelled truth voxel VOI and
adapted_rand_error are NaN; with no truth object recall is NaN and (if there are segments)
precision, f1, ap50 and map are 0; with no segment precision is NaN and recall, f1, ap50, map
are 0; both empty: all NaN. mean_matched_iou is NaN without matches.

Blockwise: every metric is a function of the table, and tables of disjoint regions add up:
`label_pairs` counts a block's table in the original ids, `merge_label_pairs` adds tables,
`table_from_pairs` compacts the sum, `metrics_from_table` scores it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import fastremap
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

__all__ = [
    "IOU_THRESHOLDS",
    "Contingency",
    "LabelPairs",
    "adapted_rand_error",
    "contingency_table",
    "instance_metrics",
    "label_pairs",
    "matching_metrics",
    "merge_label_pairs",
    "metrics_from_table",
    "table_from_pairs",
    "variation_of_information",
]

#: IoU thresholds averaged by ``map`` (0.5:0.95:0.05)
IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))


class Contingency(NamedTuple):
    """Sparse contingency table over compact ids (0 = label 0 of the input).

    ``rows[k], cols[k], counts[k]``: voxels with truth index ``rows[k]`` and segment index
    ``cols[k]``; ``truth_sizes`` / ``seg_sizes`` are whole-label voxel counts per index;
    ``num_voxels`` the array size.
    """

    rows: np.ndarray
    cols: np.ndarray
    counts: np.ndarray
    truth_sizes: np.ndarray
    seg_sizes: np.ndarray
    num_voxels: int


def contingency_table(seg: np.ndarray, truth: np.ndarray) -> Contingency:
    """The sparse contingency table of ``truth`` (rows) against ``seg`` (columns)."""
    if seg.shape != truth.shape:
        raise ValueError(f"seg shape {seg.shape} != truth shape {truth.shape}")
    t, t_ids = _compact_ids(truth)
    s, s_ids = _compact_ids(seg)
    nt, ns = len(t_ids), len(s_ids)
    rows, cols, counts = _pair_counts(t, nt, s, ns)
    truth_sizes = np.bincount(rows, weights=counts, minlength=nt).astype(np.int64)
    seg_sizes = np.bincount(cols, weights=counts, minlength=ns).astype(np.int64)
    return Contingency(rows, cols, counts, truth_sizes, seg_sizes, int(t.size))


class LabelPairs(NamedTuple):
    """The contingency table in the inputs' own label ids: ``counts[k]`` voxels carry truth
    id ``truth_ids[k]`` and segment id ``seg_ids[k]`` (each pair once). Additive over
    disjoint regions (`merge_label_pairs`), so a volume can be counted block by block."""

    truth_ids: np.ndarray
    seg_ids: np.ndarray
    counts: np.ndarray


def _id_dtype(labels: np.ndarray) -> np.dtype:
    return np.dtype(np.int64) if labels.dtype.kind == "i" else np.dtype(np.uint64)


def _compact_ids(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(compact index per voxel, original id per index); index 0 is label 0."""
    flat = np.ascontiguousarray(labels).reshape(-1)
    dtype = _id_dtype(flat)
    if flat.size and (flat.dtype.kind in "ub" or int(flat.min()) >= 0) and int(flat.max()) < 2**16:
        return flat.astype(np.int64, copy=False), np.arange(int(flat.max()) + 1, dtype=dtype)
    renumbered, mapping = fastremap.renumber(flat, preserve_zero=True, in_place=False)
    ids = np.zeros(max(mapping.values(), default=0) + 1, dtype=dtype)
    ids[np.fromiter(mapping.values(), np.int64, len(mapping))] = np.fromiter(
        mapping.keys(), dtype, len(mapping)
    )
    return renumbered.astype(np.int64, copy=False), ids


def _pair_counts(t: np.ndarray, nt: int, s: np.ndarray, ns: int) -> tuple[np.ndarray, ...]:
    """(rows, cols, counts) of the distinct pairs of the compact indices ``t``, ``s``:
    ``fastremap.unique`` of the keys t·ns + s (a dense count for small key ranges, else a
    hash/sort in C++; a ``bincount`` over nt·ns bins thrashes the cache for many objects)."""
    keys, counts = fastremap.unique(t * ns + s, return_counts=True)
    rows, cols = np.divmod(keys.astype(np.int64, copy=False), ns)
    return rows, cols, counts.astype(np.int64)


def label_pairs(seg: np.ndarray, truth: np.ndarray) -> LabelPairs:
    """The `LabelPairs` (contingency table in original ids) of ``truth`` against ``seg``."""
    if seg.shape != truth.shape:
        raise ValueError(f"seg shape {seg.shape} != truth shape {truth.shape}")
    t, t_ids = _compact_ids(truth)
    s, s_ids = _compact_ids(seg)
    rows, cols, counts = _pair_counts(t, len(t_ids), s, len(s_ids))
    return LabelPairs(t_ids[rows], s_ids[cols], counts)


def merge_label_pairs(parts: list[LabelPairs]) -> LabelPairs:
    """The `LabelPairs` of the union of disjoint regions: counts of equal pairs add."""
    if not parts:
        return LabelPairs(np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0, np.int64))
    truth_ids = np.concatenate([p.truth_ids for p in parts])
    seg_ids = np.concatenate([p.seg_ids for p in parts])
    counts = np.concatenate([p.counts for p in parts])
    t_ids, t = np.unique(truth_ids, return_inverse=True)
    s_ids, s = np.unique(seg_ids, return_inverse=True)
    keys, inverse = np.unique(t.astype(np.int64) * len(s_ids) + s, return_inverse=True)
    merged = np.bincount(inverse, weights=counts, minlength=len(keys)).astype(np.int64)
    rows, cols = np.divmod(keys, len(s_ids))
    return LabelPairs(t_ids[rows], s_ids[cols], merged)


def table_from_pairs(pairs: LabelPairs) -> Contingency:
    """The `Contingency` (compact ids, 0 kept as index 0) of `LabelPairs`; the number of
    voxels is the sum of the counts (every voxel has a pair)."""
    tables = []
    for ids in (pairs.truth_ids, pairs.seg_ids):
        nonzero = np.unique(ids[ids != 0])
        index = np.where(ids != 0, np.searchsorted(nonzero, ids) + 1, 0).astype(np.int64)
        tables.append((index, len(nonzero) + 1))
    (rows, nt), (cols, ns) = tables
    counts = np.asarray(pairs.counts, dtype=np.int64)
    truth_sizes = np.bincount(rows, weights=counts, minlength=nt).astype(np.int64)
    seg_sizes = np.bincount(cols, weights=counts, minlength=ns).astype(np.int64)
    return Contingency(rows, cols, counts, truth_sizes, seg_sizes, int(counts.sum()))


def _entropy_terms(counts: np.ndarray, marginal: np.ndarray, total: float) -> float:
    """-sum p log2(p / p_marginal) with p = counts / total."""
    p = counts / total
    return float(-np.sum(p * np.log2(counts / marginal)))


def variation_of_information(table: Contingency) -> tuple[float, float]:
    """(voi_split, voi_merge) = (H(S|T), H(T|S)) in bits over truth != 0; NaN if none."""
    fg = table.rows != 0
    rows, cols, counts = table.rows[fg], table.cols[fg], table.counts[fg]
    total = counts.sum()
    if total == 0:
        return math.nan, math.nan
    row_sums = np.bincount(rows, weights=counts, minlength=len(table.truth_sizes))
    col_sums = np.bincount(cols, weights=counts, minlength=len(table.seg_sizes))
    split = _entropy_terms(counts, row_sums[rows], total)
    merge = _entropy_terms(counts, col_sums[cols], total)
    return max(split, 0.0), max(merge, 0.0)


def adapted_rand_error(table: Contingency) -> float:
    """CREMI / SNEMI3D adapted Rand error (see module docstring); NaN without labelled truth."""
    fg = table.rows != 0
    rows, cols, counts = table.rows[fg], table.cols[fg], table.counts[fg].astype(np.float64)
    if counts.sum() == 0:
        return math.nan
    a_i = np.bincount(rows, weights=counts)
    seg_fg = cols != 0
    b_j = np.bincount(cols[seg_fg], weights=counts[seg_fg])
    singles = counts[~seg_fg].sum() / table.num_voxels
    sum_a = float(np.sum(a_i * a_i))
    sum_b = float(np.sum(b_j * b_j)) + singles
    sum_ab = float(np.sum(counts[seg_fg] ** 2)) + singles
    precision = sum_ab / sum_b
    recall = sum_ab / sum_a
    return float(1.0 - 2.0 * precision * recall / (precision + recall))


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def _num_matches(t_idx: np.ndarray, s_idx: np.ndarray) -> int:
    """Size of a maximum one-to-one matching among candidate pairs."""
    if len(np.unique(t_idx)) == len(t_idx) and len(np.unique(s_idx)) == len(s_idx):
        return len(t_idx)

    _, ti = np.unique(t_idx, return_inverse=True)
    _, si = np.unique(s_idx, return_inverse=True)
    graph = csr_matrix((np.ones(len(ti)), (ti, si)), shape=(ti.max() + 1, si.max() + 1))
    return int(np.sum(maximum_bipartite_matching(graph, perm_type="column") >= 0))


def matching_metrics(table: Contingency) -> dict[str, float]:
    """precision, recall, f1, ap50, map, mean_matched_iou (see module docstring)."""
    num_truth = int(np.count_nonzero(table.truth_sizes[1:]))
    num_seg = int(np.count_nonzero(table.seg_sizes[1:]))
    both = (table.rows != 0) & (table.cols != 0)
    rows, cols, inter = table.rows[both], table.cols[both], table.counts[both]
    iou = inter / (table.truth_sizes[rows] + table.seg_sizes[cols] - inter)
    keep = iou >= IOU_THRESHOLDS[0]
    rows, cols, iou = rows[keep], cols[keep], iou[keep]

    aps = []
    tp50 = 0
    for threshold in IOU_THRESHOLDS:
        ok = iou >= threshold
        tp = _num_matches(rows[ok], cols[ok])
        if threshold == IOU_THRESHOLDS[0]:
            tp50 = tp
        aps.append(_ratio(tp, num_truth + num_seg - tp))
    fp, fn = num_seg - tp50, num_truth - tp50
    if len(iou) == tp50:
        matched_iou = float(iou.mean()) if tp50 else math.nan
    else:  # ties at IoU == 0.5: the conflicting candidates all have IoU exactly 0.5
        strict = iou > 0.5
        matched_iou = (float(iou[strict].sum()) + 0.5 * (tp50 - int(strict.sum()))) / tp50
    return {
        "precision": _ratio(tp50, tp50 + fp),
        "recall": _ratio(tp50, tp50 + fn),
        "f1": _ratio(2 * tp50, 2 * tp50 + fp + fn),
        "ap50": aps[0],
        "map": math.nan if any(math.isnan(a) for a in aps) else float(np.mean(aps)),
        "mean_matched_iou": matched_iou,
    }


def metrics_from_table(table: Contingency) -> dict[str, float]:
    """All instance metrics (see `instance_metrics`) from a contingency table."""
    split, merge = variation_of_information(table)
    return {
        "voi_split": split,
        "voi_merge": merge,
        "voi": split + merge,
        "adapted_rand_error": adapted_rand_error(table),
        **matching_metrics(table),
    }


def instance_metrics(seg: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """All instance metrics of ``seg`` against ``truth`` from one contingency table.

    Keys: voi_split, voi_merge, voi, adapted_rand_error, precision, recall, f1, ap50, map,
    mean_matched_iou. Definitions and empty cases in the module docstring.
    """
    seg, truth = np.asarray(seg), np.asarray(truth)
    check_labels(seg, "seg")
    check_labels(truth, "truth")
    return metrics_from_table(contingency_table(seg, truth))


def check_labels(labels: np.ndarray, name: str) -> None:
    """TypeError naming ``name`` unless ``labels`` has an integer (or bool) dtype."""
    if labels.dtype.kind not in "biu":
        raise TypeError(f"{name}: integer labels required, got dtype {labels.dtype}")
