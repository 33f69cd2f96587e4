"""`dacapo.ops.agglomeration` against brute-force twins and waterz: watershed fragments as
minimax floods, the region adjacency graph and its scores, the merge-level cut, the union-find
of edges, the nearest-neighbour channels and their shift."""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict

import numpy as np
import pytest
from scipy import ndimage

from dacapo.ops.affinities import affinities
from dacapo.ops.agglomeration import (
    agglomerate_edges,
    boundary_map,
    merge_scores,
    nearest_neighbour_affinities,
    nearest_neighbour_channels,
    region_adjacency,
    relabel,
    scoring_function,
    seeds,
    watershed_fragments,
    waterz_affinities,
)
from tests.references import NN, agglomeration_volume, make_labels, same_partition

waterz = pytest.importorskip("waterz")


@pytest.fixture(scope="module")
def volume():
    return agglomeration_volume()


def brute_minimax(surface: np.ndarray, sources: list[tuple]) -> np.ndarray:
    """Smallest possible highest surface value on a face-connected path from the sources."""
    cost = np.full(surface.shape, np.inf)
    heap = []
    for s in sources:
        cost[s] = surface[s]
        heap.append((surface[s], s))
    heapq.heapify(heap)
    while heap:
        c, p = heapq.heappop(heap)
        if c > cost[p]:
            continue
        for d in range(surface.ndim):
            for step in (-1, 1):
                q = list(p)
                q[d] += step
                q = tuple(q)
                if 0 <= q[d] < surface.shape[d]:
                    nc = max(c, surface[q])
                    if nc < cost[q]:
                        cost[q] = nc
                        heapq.heappush(heap, (nc, q))
    return cost


@pytest.mark.parametrize("seed", [0, 1])
def test_watershed_fragments_are_minimax_floods(seed):
    """Every voxel gets a seed that reaches it by a path of smallest highest boundary value;
    each fragment holds exactly one seed plateau; seeds are the mask's distance maxima."""
    rng = np.random.default_rng(seed)
    affs = ndimage.gaussian_filter(rng.random((3, 7, 9, 10)), (0, 1, 1, 1)).astype(np.float32)
    affs = (affs - affs.min()) / (affs.max() - affs.min())
    frag = watershed_fragments(affs, threshold=0.45, seed_distance=3)
    markers = seeds(affs, threshold=0.45, seed_distance=3)
    # seeds twin: plateaus of voxels in the mask equal to the max of their 3-cube
    mask = affs.mean(0) > 0.45
    dist = ndimage.distance_transform_edt(mask)
    brute = np.zeros(mask.shape, bool)
    for p in itertools.product(*map(range, mask.shape)):
        window = tuple(slice(max(c - 1, 0), c + 2) for c in p)
        brute[p] = mask[p] and np.isclose(dist[p], dist[window].max())
    np.testing.assert_array_equal(markers != 0, brute)
    assert markers.max() >= 2
    surface = boundary_map(affs)
    np.testing.assert_allclose(surface, 1 - affs.mean(0), atol=1e-6)
    costs = {}
    for k in range(1, int(markers.max()) + 1):
        costs[k] = brute_minimax(surface, [tuple(p) for p in np.argwhere(markers == k)])
    best = np.min(np.stack(list(costs.values())), axis=0)
    assert (frag != 0).all()
    for k, cost in costs.items():
        inside = frag == np.uint64(k)
        np.testing.assert_allclose(cost[inside], best[inside], atol=1e-6)
        assert set(np.unique(frag[markers == k])) == {k}  # the seed keeps its label
    # one connected component per fragment
    for k in np.unique(frag):
        assert ndimage.label(frag == k)[1] == 1


def brute_region_adjacency(fragments, affs, quantile):
    samples = defaultdict(list)
    for p in itertools.product(*map(range, fragments.shape)):
        for d in range(fragments.ndim):
            q = list(p)
            q[d] += 1
            q = tuple(q)
            if q[d] >= fragments.shape[d]:
                continue
            a, b = int(fragments[p]), int(fragments[q])
            if a != b and a and b:
                samples[(min(a, b), max(a, b))].append(float(affs[d][p]))
    out = {}
    for pair, values in samples.items():
        bins = sorted(min(int(np.float32(v) * np.float32(256)), 255) if v > 0 else 0
                      for v in values)
        pick = bins[quantile * len(bins) // 100]
        out[pair] = (1 - (pick + 0.5) / 256, len(values))
    return out


def test_region_adjacency_brute_force_and_waterz(volume):
    """Edges, contact areas and histogram-quantile scores: a per-voxel loop and waterz's
    own initial region graph (scores at threshold 0) agree with `region_adjacency`."""
    labels, noisy = volume
    affs = noisy[:3, :12, :14, :16]
    frag = watershed_fragments(affs, seed_distance=2)
    frag[frag == 3] = 0  # a hole: no edges with 0
    edges, scores, areas = region_adjacency(frag, affs, 75)
    brute = brute_region_adjacency(frag, affs, 75)
    assert len(edges) > 10 and {tuple(e) for e in edges.tolist()} == set(brute)
    for (a, b), s, n in zip(edges.tolist(), scores, areas):
        assert abs(s - brute[(a, b)][0]) < 1e-6 and n == brute[(a, b)][1]
    (_, graph), = list(waterz.agglomerate(
        waterz_affinities(affs), [0.0], fragments=frag.copy(),
        scoring_function=scoring_function(75), return_region_graph=True))
    ref = {(min(e["u"], e["v"]), max(e["u"], e["v"])): e["score"] for e in graph}
    assert ref == {tuple(e): float(s) for e, s in zip(edges.tolist(), scores)}


def test_merge_levels_cut_equals_waterz(volume):
    """Components of the edges with merge level < t are waterz's segmentation at t."""
    labels, noisy = volume
    affs = noisy[:3]
    frag = watershed_fragments(affs, seed_distance=4)
    edges, levels, _, _ = merge_scores(frag, affs, 50)
    thresholds = [0.1, 0.3, 0.5, 0.7, 0.9]
    ref = waterz.agglomerate(waterz_affinities(affs), thresholds, fragments=frag.copy(),
                             scoring_function=scoring_function(50))
    counts = []
    for t, expected in zip(thresholds, ref):
        seg = relabel(frag, *agglomerate_edges(edges, levels, t))
        assert same_partition(seg, expected), t
        counts.append(len(np.unique(seg)))
    assert counts[0] > counts[-1] >= 1 and len(set(counts)) >= 3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agglomerate_edges_brute_force(seed):
    rng = np.random.default_rng(seed)
    ids = rng.choice(10**6, 40, replace=False).astype(np.uint64)
    edges = np.sort(ids[rng.integers(0, 40, (60, 2))], axis=1)
    edges = edges[edges[:, 0] != edges[:, 1]]
    levels = rng.random(len(edges)).astype(np.float32)
    got_ids, roots = agglomerate_edges(edges, levels, 0.4)
    parent = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for (a, b), level in zip(edges.tolist(), levels):
        if level < np.float32(0.4):
            ra, rb = find(a), find(b)
            parent[max(ra, rb)] = min(ra, rb)
    joined = {x for x in parent if any(find(y) == find(x) for y in parent if y != x)}
    assert sorted(joined) == got_ids.tolist()
    assert [find(int(x)) for x in got_ids] == roots.tolist()


def test_nearest_neighbour_channels_and_shift():
    offsets = [(0, 0, -1), (2, 0, 0), (-1, 0, 0), (0, 1, 0)]
    assert nearest_neighbour_channels(offsets) == [(2, -1), (3, 1), (0, -1)]
    with pytest.raises(ValueError, match=r"missing \[\(0, 0, 1\)\]"):
        nearest_neighbour_channels([(1, 0, 0), (0, 1, 0), (0, 0, 3)])
    labels = make_labels((8, 9, 10), num=4)
    ours = affinities(labels, NN)
    theirs = affinities(labels, [(-1, 0, 0), (0, -1, 0), (0, 0, -1)]).astype(np.float32)
    shifted = nearest_neighbour_affinities(theirs, [(0, -1), (1, -1), (2, -1)])
    # the last voxel of each axis has no +e_d partner: 0 after the shift
    for d in range(3):
        inner = [slice(None)] * 3
        inner[d] = slice(None, -1)
        np.testing.assert_array_equal(shifted[d][tuple(inner)], ours[d][tuple(inner)])
    np.testing.assert_array_equal(nearest_neighbour_affinities(ours * 255, [(0, 1), (1, 1), (2, 1)]),
                                  ours.astype(np.float32))


def test_region_adjacency_sort_path_and_large_ids(volume, monkeypatch):
    """Beyond the histogram limit the scores come from a sort: the same values; fragment
    ids of 64 bits (position ids) give the same edges, renamed."""
    import dacapo.ops.agglomeration as agglomeration

    _, noisy = volume
    affs = noisy[:3, :12, :14, :16]
    frag = watershed_fragments(affs, seed_distance=2)
    edges, scores, areas = region_adjacency(frag, affs, 60)
    big = np.where(frag > 0, frag * np.uint64(2**40) + np.uint64(7), 0).astype(np.uint64)
    big_edges, big_scores, big_areas = region_adjacency(big, affs, 60)
    np.testing.assert_array_equal(big_edges, np.where(edges > 0, edges * np.uint64(2**40) + np.uint64(7), 0))
    np.testing.assert_array_equal(big_scores, scores)
    np.testing.assert_array_equal(big_areas, areas)
    monkeypatch.setattr(agglomeration, "_HISTOGRAM_ENTRIES", 0)
    sorted_edges, sorted_scores, _ = region_adjacency(frag, affs, 60)
    np.testing.assert_array_equal(sorted_edges, edges)
    np.testing.assert_array_equal(sorted_scores, scores)
