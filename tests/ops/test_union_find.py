"""dacapo.ops.union_find against a brute force (breadth-first components per threshold)."""

from __future__ import annotations

import numpy as np
import pytest

from dacapo.ops.union_find import components_by_threshold


def brute_components(ids, u, v, levels, threshold) -> dict[int, int]:
    """{id: smallest id of its component} over the edges with level < threshold (BFS)."""
    neighbours = {int(i): [] for i in ids}
    for a, b, level in zip(u.tolist(), v.tolist(), levels.tolist()):
        if np.float32(level) < np.float32(threshold):
            neighbours[a].append(b)
            neighbours[b].append(a)
    root = {}
    for start in sorted(neighbours):
        if start in root:
            continue
        seen, todo = {start}, [start]
        while todo:
            for n in neighbours[todo.pop()]:
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        for n in seen:
            root[n] = min(seen)
    return root


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_components_by_threshold_equal_brute_force(seed):
    rng = np.random.default_rng(seed)
    ids = np.unique(rng.integers(1, 10**9, 300))
    m = 600
    u = rng.choice(ids, m)
    v = rng.choice(ids, m)
    levels = rng.choice(np.linspace(0, 1, 21), m).astype(np.float32)  # ties included
    order = np.argsort(levels, kind="stable")
    u, v, levels = u[order], v[order], levels[order]
    thresholds = [0.5, 0.1, 0.95, 0.35, 2.0]
    chunks = [(u[k:k + 37], v[k:k + 37], levels[k:k + 37]) for k in range(0, m, 37)]
    got = components_by_threshold(ids, iter(chunks), thresholds)
    for t, (moved, roots) in zip(thresholds, got):
        brute = brute_components(ids, u, v, levels, t)
        expected = {i: r for i, r in brute.items() if i != r}
        assert dict(zip(moved.tolist(), roots.tolist())) == expected, t
        assert (np.diff(moved) > 0).all()


def test_components_by_threshold_checks_input():
    ids = np.array([1, 5, 9])
    with pytest.raises(ValueError, match="absent from the nodes"):
        components_by_threshold(ids, [(np.array([1]), np.array([4]), np.array([0.1]))], [0.5])
    with pytest.raises(ValueError, match="ascending"):
        components_by_threshold(ids, [(np.array([1, 5]), np.array([5, 9]),
                                       np.array([0.4, 0.2]))], [0.5])
    (moved, roots), = components_by_threshold(ids, [], [0.5])
    assert len(moved) == len(roots) == 0
