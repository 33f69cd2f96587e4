"""Mutex watershed on affinities, fragment filtering and block stitching (numpy only).

Mutex watershed (Wolf et al., TPAMI 2020) via ``mwatershed.agglom`` (0.5): the edge stored at
voxel u for offset o links u and u + o; its weight is ``aff - bias``. Positive weights are
attractive (merge), negative ones repulsive (mutex constraint), and edges are processed in
descending ``|weight|``; a weight of exactly 0 is inert (never merges). All channels, short
and long range, are treated alike: a channel is attractive where the prediction exceeds the
bias. A low bias merges more, a high bias splits more. ``mwatershed`` gives label 0 to voxels
that never merged with another voxel (singletons), so isolated background voxels are 0.

Fragment filter: fragments with fewer than ``min_size`` voxels become 0. (DaCapo also
dropped fragments whose mean affinity was below the bias; that removes true objects whenever
long-range channels are low near their boundaries, and voxels with only repulsive edges are
singletons, i.e. 0, anyway, so it is not done here.)

Stitching (blockwise runs): every block is segmented on its write ROI grown by a context;
ids are made unique as ``block_index * ids_per_block + local id``. For two blocks X, Y whose
read ROIs overlap, on the part of X's write ROI that Y also saw (Y's context there), each Y
id joins the X id that holds the strict majority of its voxels there (``majority_pairs``;
X is authoritative in its write ROI) and vice versa. The union of all such pairs
(``merge_components``, representative = smallest id) gives the final labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import fastremap
import mwatershed
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = [
    "fragment_sizes",
    "keep_fragments",
    "majority_pairs",
    "merge_components",
    "mutex_watershed",
    "remove_small_fragments",
    "segment",
]


def _weights(affs: np.ndarray, bias: float | Sequence[float]) -> np.ndarray:
    """``affs - bias`` as float64 (per-channel bias allowed)."""
    bias_array = np.asarray(bias, dtype=np.float64)
    if bias_array.ndim == 1:
        bias_array = bias_array.reshape((-1,) + (1,) * (affs.ndim - 1))
    return np.asarray(affs, dtype=np.float64) - bias_array


def mutex_watershed(
    affs: np.ndarray,
    offsets: Sequence[Sequence[int]],
    bias: float | Sequence[float],
    strides: Sequence[Sequence[int]] | None = None,
    randomized_strides: bool = False,
    seed: int | None = None,
) -> np.ndarray:
    """Mutex watershed labels (uint64, 0 = singleton voxels) of ``affs`` (K, *spatial).

    Weights are ``affs - bias`` (positive attractive, negative repulsive). ``strides``
    (one per offset) subsample the edges of each offset on a regular grid (deterministic).
    With ``randomized_strides`` each edge is kept with probability 1 / prod(stride) instead,
    drawn with ``numpy.random.default_rng(seed)`` (dropped edges get weight 0, i.e. inert),
    so a fixed seed gives a fixed result.
    """

    affs = np.asarray(affs)
    offsets = [tuple(int(v) for v in o) for o in offsets]
    if affs.ndim < 2 or affs.shape[0] != len(offsets):
        raise ValueError(
            f"affs: expected shape (K={len(offsets)}, *spatial) for {len(offsets)} offsets, "
            f"got {affs.shape}"
        )
    if any(len(o) != affs.ndim - 1 for o in offsets):
        raise ValueError(f"offsets {offsets} must have {affs.ndim - 1} components each")
    weights = _weights(affs, bias)
    if strides is not None and len(strides) != len(offsets):
        raise ValueError(f"strides: need one per offset ({len(offsets)}), got {len(strides)}")
    if strides is not None and randomized_strides:
        rng = np.random.default_rng(seed)
        for k, stride in enumerate(strides):
            keep = rng.random(weights.shape[1:]) < 1.0 / float(np.prod(stride))
            weights[k][~keep] = 0.0
        strides = None
    stride_list = None if strides is None else [[int(s) for s in st] for st in strides]
    labels = mwatershed.agglom(np.ascontiguousarray(weights), offsets, strides=stride_list)
    return np.asarray(labels, dtype=np.uint64)


def fragment_sizes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids, sizes) of the non-zero fragments of ``labels`` (ids sorted, uint64)."""
    ids, sizes = fastremap.unique(np.ascontiguousarray(labels), return_counts=True)
    nonzero = ids != 0
    return ids[nonzero].astype(np.uint64), sizes[nonzero].astype(np.int64)


def keep_fragments(sizes: np.ndarray, min_size: int = 0) -> np.ndarray:
    """Boolean mask of the fragments kept: size >= max(min_size, 1)."""
    return np.asarray(sizes) >= max(int(min_size), 1)


def remove_small_fragments(labels: np.ndarray, min_size: int) -> np.ndarray:
    """``labels`` with fragments of fewer than ``min_size`` voxels set to 0."""
    if min_size <= 1:
        return labels
    ids, counts = fastremap.unique(labels, return_counts=True)
    small = ids[(counts < min_size) & (ids != 0)]
    if len(small) == 0:
        return labels
    return fastremap.mask(labels, small)


def segment(
    affs: np.ndarray,
    offsets: Sequence[Sequence[int]],
    bias: float | Sequence[float],
    min_size: int = 0,
    **kwargs,
) -> np.ndarray:
    """Single-block segmentation: `mutex_watershed`, then `remove_small_fragments`; ids
    1..n in order of first occurrence (uint64, 0 = background).

    ``kwargs`` go to `mutex_watershed` (strides, randomized_strides, seed).
    """
    labels = mutex_watershed(affs, offsets, bias, **kwargs)
    labels = remove_small_fragments(labels, min_size)
    labels, _ = fastremap.renumber(labels, preserve_zero=True, in_place=True)
    return labels.astype(np.uint64, copy=False)


def majority_pairs(authoritative: np.ndarray, context: np.ndarray) -> np.ndarray:
    """Pairs (context id, authoritative id) to merge, shape (n, 2), uint64.

    Both arrays label the same voxels (a region inside the authoritative block's write ROI,
    seen as context by the other block). A non-zero context id joins the non-zero
    authoritative id that holds strictly more than half of its voxels in the region
    (voxels where the authoritative label is 0 count in the total), so each context id
    joins at most one authoritative id.
    """
    if np.shape(authoritative) != np.shape(context):
        raise ValueError(f"majority_pairs: shapes differ ({np.shape(authoritative)} vs "
                         f"{np.shape(context)})")
    a = np.ascontiguousarray(authoritative).reshape(-1)
    c = np.ascontiguousarray(context).reshape(-1)
    valid = c != 0
    a, c = a[valid], c[valid]
    if c.size == 0:
        return np.zeros((0, 2), np.uint64)
    # one 1-D key per (context, authoritative) pair: much faster than a row-wise unique
    c_ids, c_idx = np.unique(c, return_inverse=True)
    a_ids, a_idx = np.unique(a, return_inverse=True)
    keys, counts = np.unique(c_idx.astype(np.int64) * len(a_ids) + a_idx, return_counts=True)
    pair_c, pair_a = np.divmod(keys, len(a_ids))
    c_totals = np.bincount(pair_c, weights=counts, minlength=len(c_ids))
    ok = (2 * counts > c_totals[pair_c]) & (a_ids[pair_a] != 0)
    return np.stack([c_ids[pair_c[ok]], a_ids[pair_a[ok]]], axis=1).astype(np.uint64)


def merge_components(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of the union graph given by ``pairs`` (n, 2).

    Returns ``(ids, roots)``: the sorted ids that occur in a pair and, for each, the
    smallest id of its component.
    """

    pairs = np.asarray(pairs, dtype=np.uint64).reshape(-1, 2)
    if len(pairs) == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    ids, inverse = np.unique(pairs.reshape(-1), return_inverse=True)
    inverse = inverse.reshape(-1, 2)
    n = len(ids)
    graph = coo_matrix((np.ones(len(inverse)), (inverse[:, 0], inverse[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=True, connection="weak")
    smallest = np.full(component.max() + 1, n, dtype=np.int64)
    np.minimum.at(smallest, component, np.arange(n))
    return ids, ids[smallest[component]]
