"""Fragments + agglomeration on affinities (the LSD paper's pipeline), numpy only.

Sheridan et al., Nature Methods 2022 (and Funke et al., TPAMI 2019 for the agglomeration):
over-segment into fragments by a seeded watershed, score the region-adjacency edges between
fragments by a quantile of the affinities on their contact, agglomerate hierarchically, then
cut the hierarchy at thresholds.

Conventions. ``affs`` holds one channel per spatial axis, the nearest-neighbour affinities
in this project's convention: channel d at voxel u links u and u + e_d (as the task's
``neighborhood`` offsets (1,0,0), (0,1,0), (0,0,1)). waterz wants the value at u to link u
and u - e_d; `waterz_affinities` shifts by one voxel.

Fragments (`watershed_fragments`): boundary b(u) = 1 - mean_d affs[d](u); mask = mean > t
(t = ``threshold``, 0.5); dist = Euclidean distance transform of the mask (``edt``, voxel
anisotropy); seeds = connected plateaus of voxels in the mask where dist equals its maximum
over a cube of ``seed_distance`` voxels (scipy ``maximum_filter``); then a seeded watershed
(`dacapo.ops.flood.flood`: priority flooding of b quantised to steps of 2^-12, face
connectivity, ties first-in first-out) from the seeds over the whole volume. Every voxel
gets the label of a seed it reaches by a path whose highest boundary value is smallest
(minimax); no seed at all (everything boundary) gives 0.
Blockwise, a fragment is named after the position of its seed (`position_ids`), so the
pieces of a fragment that two blocks compute with context keep one id.

Edges (`region_adjacency`): for every pair of face-adjacent voxels (u, u + e_d) with
different non-zero fragments a < b, the affinity affs[d](u) is one sample of edge (a, b).
Its score is waterz's ``OneMinus<HistogramQuantileAffinity<..., Q, ..., 256, false>>``:
samples discretised to 256 bins (bin = min(floor(256 a), 255), 0 for a <= 0), the sample of
0-based rank floor(Q n / 100) in ascending order, back to (bin + 0.5) / 256; score = 1 - that
(float32). A high affinity on the contact gives a low score (merge early).

Agglomeration (`merge_levels`, `agglomerate_edges`): waterz merges greedily the edge of
lowest score, recomputing the scores of the merged region's edges from their summed
histograms, until every score is >= the threshold. Scores popped are non-decreasing, so the
merge history is a hierarchy: the *merge level* of a region-adjacency edge (a, b) is the
score at which a and b first end up in one region (1 if never). Cutting at threshold t,
the connected components of the edges with level < t are exactly waterz's segmentation at
t (each merge joins two regions through at least one edge of level <= its score). The levels
of the blockwise pipeline are computed per block with context and combined globally by a
union-find (`agglomerate_edges`), which is how the LSD pipeline runs on large volumes.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence

import edt
import fastremap
import numpy as np
import waterz
from scipy.ndimage import label, maximum_filter

from .flood import flood
from .watershed import merge_components, renumbered

__all__ = [
    "agglomerate_edges",
    "boundary_map",
    "histogram_quantile_scores",
    "merge_levels",
    "merge_scores",
    "nearest_neighbour_affinities",
    "nearest_neighbour_channels",
    "position_ids",
    "region_adjacency",
    "relabel",
    "scoring_function",
    "seeds",
    "waterz_affinities",
    "watershed_fragments",
]

BINS = 256
_HISTOGRAM_ENTRIES = 1 << 23  # per-edge histograms up to 64 MiB, else a sort


def _check_affs(affs: np.ndarray, name: str = "affs") -> np.ndarray:
    affs = np.asarray(affs)
    if affs.ndim not in (3, 4) or affs.shape[0] != affs.ndim - 1:
        raise ValueError(
            f"{name}: expected one nearest-neighbour channel per spatial axis, shape "
            f"(2, y, x) or (3, z, y, x), got {affs.shape}"
        )
    return affs


def nearest_neighbour_channels(offsets: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """For each spatial axis d, ``(channel, sign)`` of the offset +e_d (sign 1) or -e_d
    (sign -1) in ``offsets``; ValueError naming the missing axes."""
    offsets = [tuple(int(v) for v in o) for o in offsets]
    dims = len(offsets[0]) if offsets else 0
    found = []
    missing = []
    for d in range(dims):
        unit = tuple(int(i == d) for i in range(dims))
        minus = tuple(-v for v in unit)
        if unit in offsets:
            found.append((offsets.index(unit), 1))
        elif minus in offsets:
            found.append((offsets.index(minus), -1))
        else:
            missing.append(unit)
    if not found or missing:
        raise ValueError(f"neighborhood: the agglomeration needs the nearest-neighbour offsets "
                         f"of every axis; missing {missing or 'all'} in {offsets}")
    return found


def nearest_neighbour_affinities(prediction: np.ndarray,
                                 channels: Sequence[tuple[int, int]]) -> np.ndarray:
    """(dims, *spatial) float32 in [0, 1], channel d at u linking u and u + e_d, from the
    prediction's channels ``channels`` (`nearest_neighbour_channels`); a -e_d channel is
    shifted by one voxel, integer predictions are scaled by the dtype's maximum."""
    prediction = np.asarray(prediction)
    dims = len(channels)
    if prediction.ndim == dims:
        prediction = prediction[None]
    scale = np.iinfo(prediction.dtype).max if np.issubdtype(prediction.dtype, np.integer) else 1
    out = np.zeros((dims,) + prediction.shape[1:], np.float32)
    for d, (channel, sign) in enumerate(channels):
        data = prediction[channel].astype(np.float32) / np.float32(scale)
        if sign > 0:
            out[d] = data
        else:  # value at u links u and u - e_d: belongs to u - e_d in our convention
            lo = [slice(None)] * dims
            hi = [slice(None)] * dims
            lo[d] = slice(None, -1)
            hi[d] = slice(1, None)
            out[d][tuple(lo)] = data[tuple(hi)]
    return out


def _mean(affs: np.ndarray) -> np.ndarray:
    """Mean over channels of the nearest-neighbour affinities (float32)."""
    affs = _check_affs(affs)
    return (affs if affs.dtype == np.float32 else affs.astype(np.float32)).mean(axis=0)


def boundary_map(affs: np.ndarray) -> np.ndarray:
    """b = 1 - mean over channels of the nearest-neighbour affinities (float32)."""
    return (1.0 - _mean(affs)).astype(np.float32)


def seeds(
    affs: np.ndarray,
    voxel_size: Sequence[float] | None = None,
    threshold: float = 0.5,
    seed_distance: int = 10,
) -> np.ndarray:
    """Seed labels 1..n (uint64, 0 elsewhere): plateaus of local maxima of the distance
    transform of ``mean(affs) > threshold`` inside that mask (cube of ``seed_distance``
    voxels)."""
    return _seeds_of_mean(_mean(affs), voxel_size, threshold, seed_distance)


def _seeds_of_mean(mean: np.ndarray, voxel_size: Sequence[float] | None, threshold: float,
                   seed_distance: int) -> np.ndarray:
    mask = mean > threshold
    anisotropy = tuple(float(v) for v in (voxel_size or (1.0,) * mask.ndim))
    dist = edt.edt(np.ascontiguousarray(mask, dtype=np.uint8), anisotropy=anisotropy,
                   black_border=False)
    maxima = (maximum_filter(dist, size=max(int(seed_distance), 1)) == dist) & mask
    labels, _ = label(maxima)
    return labels.astype(np.uint64)


def position_ids(markers: np.ndarray, origin: Sequence[int],
                 volume_shape: Sequence[int]) -> np.ndarray:
    """``markers`` with each seed k renamed 1 + the smallest C-order linear index, in a
    volume of ``volume_shape`` where this array starts at voxel ``origin``, of its voxels
    (the same seed seen by two blocks gets the same id). uint64."""
    markers = np.asarray(markers)
    where = np.flatnonzero(markers)
    out = np.zeros(markers.shape, np.uint64)
    if len(where) == 0:
        return out
    labels = markers.reshape(-1)[where].astype(np.int64)
    coords = np.unravel_index(where, markers.shape)
    linear = np.ravel_multi_index(tuple(c + int(o) for c, o in zip(coords, origin)),
                                  tuple(int(v) for v in volume_shape))
    smallest = np.full(int(labels.max()) + 1, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(smallest, labels, linear)
    out.reshape(-1)[where] = (smallest[labels] + 1).astype(np.uint64)
    return out


def watershed_fragments(
    affs: np.ndarray,
    voxel_size: Sequence[float] | None = None,
    threshold: float = 0.5,
    seed_distance: int = 10,
    origin: Sequence[int] | None = None,
    volume_shape: Sequence[int] | None = None,
) -> np.ndarray:
    """Fragments (uint64): seeded watershed of `boundary_map` from `seeds`, covering every
    voxel; all 0 if there is no seed. Ids 1..n in seed order, or with ``origin`` and
    ``volume_shape`` the `position_ids` of the seeds (blockwise: a fragment cut by a block
    face keeps one id on both sides when both blocks find its seed)."""
    mean = _mean(affs)
    markers = _seeds_of_mean(mean, voxel_size, threshold, seed_distance)
    if not markers.any():
        return markers
    if origin is not None:
        markers = position_ids(markers, origin, volume_shape)
    np.subtract(np.float32(1.0), mean, out=mean)  # the boundary map
    return flood(mean, markers)


def _contact_samples(fragments: np.ndarray, affs: np.ndarray):
    """(a, b, affinity) of every face-adjacent voxel pair with different non-zero labels,
    a < b (our convention: affs[d] at u links u and u + e_d)."""
    affs = _check_affs(affs)
    if affs.shape[1:] != fragments.shape:
        raise ValueError(f"fragments: shape {fragments.shape} differs from the affinities' "
                         f"{affs.shape[1:]}")
    us, vs, values = [], [], []
    for d in range(fragments.ndim):
        lo = [slice(None)] * fragments.ndim
        hi = [slice(None)] * fragments.ndim
        lo[d] = slice(None, -1)
        hi[d] = slice(1, None)
        a = fragments[tuple(lo)]
        b = fragments[tuple(hi)]
        boundary = (a != b) & (a != 0) & (b != 0)
        us.append(a[boundary])
        vs.append(b[boundary])
        values.append(affs[d][tuple(lo)][boundary])
    u = np.concatenate(us)
    v = np.concatenate(vs)
    return np.minimum(u, v), np.maximum(u, v), np.concatenate(values).astype(np.float32)


def _bins(values: np.ndarray, bins: int) -> np.ndarray:
    """waterz's histogram bin of each affinity: min(floor(bins a), bins - 1), 0 for a <= 0
    (and NaN), bins - 1 for a >= 1 (int64)."""
    scaled = values * np.float32(bins)
    binned = np.where(values > 0, np.minimum(np.nan_to_num(scaled, nan=0.0), bins - 1),
                      0).astype(np.int64)
    binned[values >= 1] = bins - 1
    return binned


def histogram_quantile_scores(values: np.ndarray, group: np.ndarray, num_groups: int,
                              quantile: int = 75, bins: int | None = BINS) -> np.ndarray:
    """Per group, 1 - the sample of rank floor(quantile * n / 100) (0-based, ascending);
    values discretised to ``bins`` bins as waterz does (None: exact). float32."""
    values = np.asarray(values, np.float32)
    group = np.asarray(group, np.int64)
    counts = np.bincount(group, minlength=num_groups)
    rank = (int(quantile) * counts) // 100
    if bins is not None and num_groups * bins <= _HISTOGRAM_ENTRIES:
        # per group a histogram; the picked bin is the first whose cumulative count > rank
        cumulative = np.bincount(group * bins + _bins(values, bins),
                                 minlength=num_groups * bins).reshape(num_groups, bins)
        np.cumsum(cumulative, axis=1, out=cumulative)
        picked_bin = (cumulative <= rank[:, None]).sum(axis=1)
        picked = (picked_bin.astype(np.float32) + np.float32(0.5)) / np.float32(bins)
        return (np.float32(1.0) - picked).astype(np.float32)
    if bins is not None:
        values = (_bins(values, bins).astype(np.float32) + np.float32(0.5)) / np.float32(bins)
    order = np.lexsort((values, group))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    picked = values[order][starts + rank]
    return (np.float32(1.0) - picked).astype(np.float32)


def region_adjacency(
    fragments: np.ndarray, affs: np.ndarray, quantile: int = 75, bins: int | None = BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Region-adjacency edges of ``fragments``: ``(edges (n, 2) uint64 sorted, a < b,
    scores float32, contact areas int64)``; score = 1 - histogram quantile of the contact's
    affinities (see the module docstring)."""
    dense, ids = renumbered(fragments)
    u, v, values = _contact_samples(dense, affs)
    if len(u) == 0:
        return np.zeros((0, 2), np.uint64), np.zeros(0, np.float32), np.zeros(0, np.int64)
    stride = np.int64(len(ids))
    keys, group = np.unique(u.astype(np.int64) * stride + v, return_inverse=True)
    group = group.reshape(-1)
    scores = histogram_quantile_scores(values, group, len(keys), quantile, bins)
    a, b = ids[keys // stride], ids[keys % stride]
    low, high = np.minimum(a, b), np.maximum(a, b)
    order = np.lexsort((high, low))
    pairs = np.stack([low[order], high[order]], axis=1)
    return pairs, scores[order], np.bincount(group, minlength=len(keys))[order]


def waterz_affinities(affs: np.ndarray) -> np.ndarray:
    """Our nearest-neighbour affinities as waterz's input: (3, z, y, x) float32 where the
    value at p links p and p - e_d (shifted by one voxel; 2D gets a z axis of length 1)."""
    affs = _check_affs(affs).astype(np.float32)
    if affs.ndim == 3:
        affs = np.concatenate([np.zeros((1,) + affs.shape[1:], np.float32), affs])[:, None]
    out = np.zeros_like(affs)
    for d in range(3):
        src = [slice(None)] * 3
        dst = [slice(None)] * 3
        src[d] = slice(None, -1)
        dst[d] = slice(1, None)
        out[(d,) + tuple(dst)] = affs[(d,) + tuple(src)]
    return np.ascontiguousarray(out)


def scoring_function(quantile: int = 75) -> str:
    """waterz's C++ scoring function of the LSD paper's ``hist_quant_<quantile>``."""
    return (f"OneMinus<HistogramQuantileAffinity<RegionGraphType, {int(quantile)}, "
            "ScoreValue, 256, false>>")


def merge_levels(edges: np.ndarray, merges: Sequence[tuple[int, int, float]],
                 num_nodes: int) -> np.ndarray:
    """Merge level of each edge (float32, 1 where never merged) from a merge history.

    ``edges``: (n, 2) node ids < ``num_nodes``; ``merges``: (a, b, score) in the order they
    happened (the regions of a and b join at ``score``). All edges between the two regions
    get the merge's score; contracted adjacency lists are merged small into large.
    """
    levels = np.ones(len(edges), np.float32)
    parent = np.arange(num_nodes)

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    adjacency: list[dict[int, list[int]] | None] = [{} for _ in range(num_nodes)]
    for e, (a, b) in enumerate(np.asarray(edges, np.int64).tolist()):
        shared = adjacency[a].get(b)
        if shared is None:
            shared = adjacency[a][b] = adjacency[b][a] = []
        shared.append(e)
    for a, b, score in merges:
        ra, rb = find(int(a)), find(int(b))
        if ra == rb:
            continue
        between = adjacency[ra].pop(rb, None)
        adjacency[rb].pop(ra, None)
        if between:
            levels[between] = score
        if len(adjacency[ra]) < len(adjacency[rb]):
            ra, rb = rb, ra
        parent[rb] = ra
        into = adjacency[ra]
        for n, moved in adjacency[rb].items():
            del adjacency[n][rb]
            target = into.get(n)
            if target is None:
                into[n] = adjacency[n][ra] = moved
            else:
                if len(target) < len(moved):
                    moved.extend(target)
                    into[n] = adjacency[n][ra] = moved
                else:
                    target.extend(moved)
        adjacency[rb] = None
    return levels


def merge_scores(
    fragments: np.ndarray, affs: np.ndarray, quantile: int = 75
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Region-adjacency edges of ``fragments`` with waterz's hierarchical merge levels.

    Returns ``(edges (n, 2) uint64, levels float32, scores float32, areas int64)``:
    `region_adjacency` edges and initial scores, and the level at which waterz's
    agglomeration (``scoring_function(quantile)``, run up to 1) joins each edge's two
    fragments. Components of the edges with level < t equal ``waterz.agglomerate`` at t.
    """
    fragments = np.asarray(fragments)
    edges, scores, areas = region_adjacency(fragments, affs, quantile)
    if len(edges) == 0:
        return edges, np.zeros(0, np.float32), scores, areas
    # waterz sizes its tables by the largest id: local ids 1..n
    local, remap = fastremap.renumber(np.ascontiguousarray(fragments, dtype=np.uint64),
                                      preserve_zero=True, in_place=False)
    local = local.astype(np.uint64)
    if local.ndim == 2:
        local = local[None]
    to_local = fastremap.remap(edges, remap).astype(np.int64)
    num_nodes = int(local.max()) + 1
    merges = []
    with _quiet_stdout():  # waterz logs every step to C++ std::cout
        results = list(waterz.agglomerate(
            waterz_affinities(affs), [1.0], fragments=local.copy(),  # written in place
            scoring_function=scoring_function(quantile), return_merge_history=True,
        ))
    for _, history in results:
        merges = [(m["a"], m["b"], m["score"]) for m in history]
    levels = merge_levels(to_local, merges, num_nodes)
    return edges, levels, scores, areas


@contextlib.contextmanager
def _quiet_stdout():
    """Send file descriptor 1 to /dev/null (C++ output, which ``sys.stdout`` can't catch)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def agglomerate_edges(edges: np.ndarray, levels: np.ndarray,
                      threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Union-find of the edges with level < ``threshold`` (float32 comparison, as waterz).

    Returns ``(ids, roots)``: the sorted ids joined to at least one other and, for each, the
    smallest id of its component (`dacapo.ops.watershed.merge_components`).
    """
    edges = np.asarray(edges, np.uint64).reshape(-1, 2)
    keep = np.asarray(levels, np.float32) < np.float32(threshold)
    return merge_components(edges[keep])


def relabel(fragments: np.ndarray, ids: np.ndarray, roots: np.ndarray) -> np.ndarray:
    """``fragments`` with each id in ``ids`` (sorted) replaced by its root; others kept."""
    fragments = np.asarray(fragments, np.uint64)
    if len(ids) == 0:
        return fragments.copy()
    where = np.minimum(np.searchsorted(ids, fragments), len(ids) - 1)
    found = ids[where] == fragments
    return np.where(found, roots[where], fragments).astype(np.uint64)
