"""Union-find over dense integer ids fed by edges in ascending level: the components at
several thresholds in one pass over a stream of edges.

Cutting a merge hierarchy at threshold t keeps the edges of level < t; its segments are
the connected components of those edges (`dacapo.ops.agglomeration`). With the edges in
ascending level, the components at t1 < t2 < ... are snapshots of one union-find taken
as the stream first reaches a level >= t_k, so every threshold costs one pass over the
edges and one O(n) snapshot over the n nodes.

The forest: ``parent[i] <= i`` always (a union hangs the root of larger index below the
smaller; path halving, ``parent[x] <- parent[parent[x]]``, keeps that), so each root is
the smallest index of its component and one ascending sweep ``parent[i] <-
parent[parent[i]]`` flattens the forest (Tarjan & van Leeuwen, J. ACM 31(2), 1984, path
halving). Memory: the n ids and the forest (16 bytes per node) and one chunk of edges;
nothing grows with the number of edges.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numba
import numpy as np

__all__ = ["components_by_threshold", "dense_index", "union_edges"]


@numba.njit(cache=True, nogil=True)
def _find(parent: np.ndarray, x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@numba.njit(cache=True, nogil=True)
def union_edges(parent: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """Join the components of ``a[k]`` and ``b[k]`` (dense indices) in ``parent``; the
    root of a component is its smallest index."""
    for k in range(len(a)):
        ra = _find(parent, a[k])
        rb = _find(parent, b[k])
        if ra < rb:
            parent[rb] = ra
        elif rb < ra:
            parent[ra] = rb


@numba.njit(cache=True, nogil=True)
def _roots(parent: np.ndarray) -> np.ndarray:
    roots = parent.copy()
    for i in range(len(roots)):
        roots[i] = roots[roots[i]]
    return roots


def dense_index(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of each of ``values`` in the sorted ``ids``; ValueError if one is absent."""
    where = np.searchsorted(ids, values)
    bad = where >= len(ids)
    where[bad] = 0
    missing = bad | (ids[where] != values)
    if missing.any():
        raise ValueError(f"edges name {int(missing.sum())} node(s) absent from the nodes, "
                         f"e.g. {int(values[missing][0])}")
    return where


def components_by_threshold(ids: np.ndarray,
                            chunks: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
                            thresholds: Sequence[float]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Components of the edges of level < t for each t of ``thresholds``.

    ``ids``: the node ids, sorted (int64). ``chunks``: ``(u, v, level)`` arrays, levels
    ascending over the whole stream (float32 comparison, as waterz). Returns per threshold
    (in the given order) ``(ids, roots)``: the ids whose component's smallest id is not
    themselves, and that smallest id (both int64, ids sorted).
    """
    ids = np.asarray(ids, np.int64)
    parent = np.arange(len(ids), dtype=np.int64)
    order = sorted(range(len(thresholds)), key=lambda k: thresholds[k])
    cuts = [np.float32(thresholds[k]) for k in order]
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    step = 0
    last = -np.inf

    def snapshot() -> tuple[np.ndarray, np.ndarray]:
        roots = _roots(parent)
        moved = np.flatnonzero(roots != np.arange(len(ids)))
        return ids[moved], ids[roots[moved]]

    for u, v, level in chunks:
        level = np.asarray(level, np.float32)
        if len(level) and (level[0] < last or np.any(np.diff(level) < 0)):
            raise ValueError("components_by_threshold: the edges are not in ascending level")
        last = level[-1] if len(level) else last
        a, b = dense_index(ids, np.asarray(u, np.int64)), dense_index(ids, np.asarray(v, np.int64))
        start = 0
        while step < len(cuts):
            end = int(np.searchsorted(level, cuts[step], side="left"))
            if end == len(level):
                break
            union_edges(parent, a[start:end], b[start:end])
            start = end
            out[order[step]] = snapshot()
            step += 1
        union_edges(parent, a[start:], b[start:])
    while step < len(cuts):
        out[order[step]] = snapshot()
        step += 1
    return [out[k] for k in range(len(thresholds))]
