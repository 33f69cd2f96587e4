"""Mutex watershed on affinities, fragment filtering and block stitching (numpy only).

Mutex watershed (Wolf et al., TPAMI 2020) via ``mwatershed.agglom`` (0.5): the edge stored at
voxel u for offset o links u and u + o; its weight is ``aff - bias``. Positive weights are
attractive (merge), negative ones repulsive (mutex constraint), and edges are processed in
descending ``|weight|``; a weight of exactly 0 is inert (never merges). All channels, short
and long range, are treated alike: a channel is attractive where the prediction exceeds the
bias. A low bias merges more, a high bias splits more. ``mwatershed`` gives label 0 to voxels
that never merged with another voxel (singletons), so isolated background voxels are 0.

Fast exact path: MWS only merges along attractive edges, so every MWS cluster lies inside a
connected component of the attractive edges (weight > 0). If no repulsive edge (weight < 0)
joins two voxels of the same component, no mutex constraint can ever block a merge inside a
component, whatever the processing order, and MWS returns exactly these components (voxels
without an attractive edge: 0). `mutex_watershed` checks this first (one union-find pass over
the edges, numba) and returns the components when it holds; otherwise (or with grid strides,
or NaN weights) it runs ``mwatershed.agglom`` as before. Label ids are arbitrary either way
(callers renumber); the partition is the same.

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
import numba
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = [
    "attractive_components",
    "compact",
    "fragment_sizes",
    "keep_fragments",
    "majority_pairs",
    "majority_pairs_indexed",
    "merge_components",
    "mutex_watershed",
    "remove_small_fragments",
    "renumbered",
    "segment",
]


def _weights(affs: np.ndarray, bias: float | Sequence[float]) -> np.ndarray:
    """``affs - bias`` as float64 (per-channel bias allowed)."""
    bias_array = np.asarray(bias, dtype=np.float64)
    if bias_array.ndim == 1:
        bias_array = bias_array.reshape((-1,) + (1,) * (affs.ndim - 1))
    return np.subtract(affs, bias_array, dtype=np.float64)


def mutex_watershed(
    affs: np.ndarray,
    offsets: Sequence[Sequence[int]],
    bias: float | Sequence[float],
    strides: Sequence[Sequence[int]] | None = None,
    randomized_strides: bool = False,
    seed: int | None = None,
) -> np.ndarray:
    """Mutex watershed labels (uint64, 0 = singleton voxels, ids arbitrary) of ``affs``
    (K, *spatial).

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
    weights = np.ascontiguousarray(weights)
    if stride_list is None:
        labels = attractive_components(weights, offsets)
        if labels is not None:
            return labels
    labels = mwatershed.agglom(weights, offsets, strides=stride_list)
    return np.asarray(labels, dtype=np.uint64)


def attractive_components(weights: np.ndarray, offsets: Sequence[Sequence[int]]) -> np.ndarray | None:
    """The mutex watershed result when it is order-free (see the module docstring): labels
    (uint64, 0 = no attractive edge) of the connected components of the edges with weight
    > 0, or None when a repulsive edge (weight < 0) joins two voxels of one component, or a
    weight is NaN. ``weights`` (K, *spatial) float64, edge at u linking u and u + o_k."""
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    spatial = weights.shape[1:]
    if len(spatial) > 3 or len(spatial) < 1 or any(not any(o) for o in offsets):
        return None  # (a zero offset links a voxel to itself: left to mwatershed)
    pad = 3 - len(spatial)
    w = weights.reshape((weights.shape[0],) + (1,) * pad + spatial)
    offs = np.asarray([(0,) * pad + tuple(o) for o in offsets], dtype=np.int64).reshape(-1, 3)
    labels = np.empty(int(np.prod(spatial)), np.uint64)
    if not _components_kernel(w, offs, labels):
        return None
    return labels.reshape(spatial)


@numba.njit(cache=True, nogil=True)
def _find(parent, i):  # pragma: no cover - numba
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@numba.njit(cache=True, nogil=True)
def _components_kernel(w, offsets, labels):  # pragma: no cover - numba
    """Union-find over the attractive edges, then the repulsive-edge check; labels = root
    index + 1 for voxels with an attractive edge, 0 elsewhere. False when not order-free."""
    n_k, n_z, n_y, n_x = w.shape
    n = n_z * n_y * n_x
    parent = np.arange(n)
    touched = np.zeros(n, np.bool_)
    for k in range(n_k):
        oz, oy, ox = offsets[k, 0], offsets[k, 1], offsets[k, 2]
        step = (oz * n_y + oy) * n_x + ox
        for z in range(max(0, -oz), min(n_z, n_z - oz)):
            for y in range(max(0, -oy), min(n_y, n_y - oy)):
                row = (z * n_y + y) * n_x
                for x in range(max(0, -ox), min(n_x, n_x - ox)):
                    wt = w[k, z, y, x]
                    if wt > 0.0:
                        u = row + x
                        v = u + step
                        touched[u] = True
                        touched[v] = True
                        ru = _find(parent, u)
                        rv = _find(parent, v)
                        if ru < rv:
                            parent[rv] = ru
                        elif rv < ru:
                            parent[ru] = rv
                    elif wt != wt:  # NaN: leave it to mwatershed (which refuses it)
                        return False
    for k in range(n_k):
        oz, oy, ox = offsets[k, 0], offsets[k, 1], offsets[k, 2]
        step = (oz * n_y + oy) * n_x + ox
        for z in range(max(0, -oz), min(n_z, n_z - oz)):
            for y in range(max(0, -oy), min(n_y, n_y - oy)):
                row = (z * n_y + y) * n_x
                for x in range(max(0, -ox), min(n_x, n_x - ox)):
                    if w[k, z, y, x] < 0.0:
                        u = row + x
                        if _find(parent, u) == _find(parent, u + step):
                            return False
    for i in range(n):
        labels[i] = _find(parent, i) + 1 if touched[i] else 0
    return True


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


def compact(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, index)``: the sorted distinct values of ``labels`` (uint64) and, per voxel, the
    position of its value in ``ids`` in the smallest unsigned dtype (``labels == ids[index]``)."""
    labels = np.ascontiguousarray(labels)
    if labels.size == 0:
        return np.zeros(0, np.uint64), np.zeros(labels.shape, np.uint8)
    ids, index = fastremap.unique(labels, return_inverse=True)
    index = index.reshape(labels.shape)
    for dtype in (np.uint8, np.uint16, np.uint32):
        if len(ids) <= np.iinfo(dtype).max + 1:
            index = index.astype(dtype)
            break
    return ids.astype(np.uint64), index


def renumbered(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(dense, ids)``: ``labels`` renumbered 1..k in order of first appearance (0 kept;
    ``fastremap.renumber``, smallest dtype) and the uint64 table back, ``ids[dense] ==
    labels``. Unlike `compact` the ids are not sorted (no sort of the voxels)."""
    dense, mapping = fastremap.renumber(np.asarray(labels), preserve_zero=True, in_place=False)
    ids = np.zeros(len(mapping) + 1, np.uint64)
    ids[np.fromiter(mapping.values(), np.int64)] = np.fromiter(mapping.keys(), np.uint64)
    return dense, ids


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
    return majority_pairs_indexed(*compact(authoritative), *compact(context))


@numba.njit(cache=True, nogil=True)
def _pair_counts(a, c, n_a, n_c):  # pragma: no cover - numba
    """Dense (context, authoritative) voxel counts, ``counts[c * n_a + a]``."""
    counts = np.zeros(n_c * n_a, np.int64)
    for i in range(a.size):
        counts[np.int64(c[i]) * n_a + np.int64(a[i])] += 1
    return counts


def majority_pairs_indexed(auth_ids: np.ndarray, auth_index: np.ndarray, ctx_ids: np.ndarray,
                           ctx_index: np.ndarray) -> np.ndarray:
    """`majority_pairs` of ``auth_ids[auth_index]`` and ``ctx_ids[ctx_index]`` (`compact`
    forms; ids sorted): the (context, authoritative) voxel counts in one pass over the
    index pairs (a dense table where it is small: no voxel-sized temporaries, whose
    allocation churn cost the stitching pass 2.5x in page faults), else one sort."""
    a = np.ascontiguousarray(auth_index).reshape(-1)
    c = np.ascontiguousarray(ctx_index).reshape(-1)
    if a.shape != c.shape:
        raise ValueError(f"majority_pairs: shapes differ ({np.shape(auth_index)} vs "
                         f"{np.shape(ctx_index)})")
    n_a = len(auth_ids)
    if len(ctx_ids) * n_a <= 4 * a.size + 4096:
        counts = _pair_counts(a, c, n_a, len(ctx_ids))
        keys = np.flatnonzero(counts)
        counts = counts[keys]
    else:
        keys, counts = np.unique(c.astype(np.int64) * n_a + a.astype(np.int64),
                                 return_counts=True)
    pair_c, pair_a = np.divmod(keys, n_a)
    c_totals = np.bincount(pair_c, weights=counts, minlength=len(ctx_ids))
    ok = (2 * counts > c_totals[pair_c]) & (auth_ids[pair_a] != 0) & (ctx_ids[pair_c] != 0)
    return np.stack([ctx_ids[pair_c[ok]], auth_ids[pair_a[ok]]], axis=1).astype(np.uint64)


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
