"""The order-free fast path of the mutex watershed (`dacapo.ops.watershed.attractive_components`)
against ``mwatershed.agglom`` itself, the reference: same partition wherever it is taken."""

from __future__ import annotations

import fastremap
import mwatershed
import numpy as np
import pytest

from dacapo.ops.watershed import attractive_components, compact, mutex_watershed


def partition(labels: np.ndarray) -> np.ndarray:
    """Ids renumbered by first occurrence (0 kept): equal iff the partitions are equal."""
    return fastremap.renumber(np.array(labels, np.uint64), preserve_zero=True, in_place=True)[0]


def random_case(rng):
    dims = int(rng.integers(1, 4))
    shape = tuple(int(n) for n in rng.integers(1, 7, dims))
    offsets = []
    for _ in range(int(rng.integers(1, 4))):
        o = tuple(int(rng.integers(-min(2, n - 1), min(2, n - 1) + 1)) for n in shape)
        if any(o):
            offsets.append(o)
    if not offsets:
        offsets = [(1,) + (0,) * (dims - 1)] if shape[0] > 1 else [(0,) * (dims - 1) + (0,)]
    # quarter steps: many ties and exact zeros (inert edges)
    weights = rng.integers(0, 5, (len(offsets),) + shape) / 4.0 - 0.5
    return weights, offsets


@pytest.mark.parametrize("seed", range(6))
def test_fast_path_equals_mwatershed(seed):
    rng = np.random.default_rng(seed)
    taken = 0
    for _ in range(300):
        weights, offsets = random_case(rng)
        if not any(any(o) for o in offsets):
            continue
        fast = attractive_components(weights, offsets)
        if fast is None:
            continue
        taken += 1
        ref = np.asarray(mwatershed.agglom(np.ascontiguousarray(weights), offsets), np.uint64)
        np.testing.assert_array_equal(partition(fast), partition(ref))
    assert taken > 50  # the path is exercised, not skipped


def test_fast_path_refuses_when_order_matters():
    # a chain 0-1-2 joined by attractive edges with a repulsive long-range edge 0-2:
    # which merge wins depends on the order, so mwatershed must decide
    w_short = np.array([[[0.4, 0.3, 0.0]]])
    w_long = np.array([[[-0.35, 0.0, 0.0]]])
    assert attractive_components(w_short, [(0, 1)]) is not None
    weights = np.concatenate([w_short, w_long])
    assert attractive_components(weights, [(0, 1), (0, 2)]) is None
    labels = mutex_watershed(weights + 0.5, [(0, 1), (0, 2)], 0.5)[0]
    assert labels[0] == labels[1] != labels[2]  # 0.4 merges 0-1, then the mutex (0.35) wins


def test_fast_path_on_touching_cells():
    # cells touching along faces: all cross-cell edges repulsive -> the path applies
    rng = np.random.default_rng(0)
    cells = (np.arange(12)[:, None, None] // 4) * 16 + (np.arange(12)[None, :, None] // 3) * 3 \
        + np.arange(12)[None, None, :] // 4
    offsets = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (2, 0, 0)]
    affs = np.zeros((len(offsets),) + cells.shape)
    for k, o in enumerate(offsets):
        src = tuple(slice(0, n - v) for n, v in zip(cells.shape, o))
        dst = tuple(slice(v, n) for n, v in zip(cells.shape, o))
        affs[k][src] = cells[src] == cells[dst]
    affs = np.clip(affs * 0.8 + 0.1 + rng.normal(0, 0.05, affs.shape), 0, 1)
    weights = affs - 0.5
    fast = attractive_components(weights, offsets)
    assert fast is not None
    ref = np.asarray(mwatershed.agglom(np.ascontiguousarray(weights), offsets), np.uint64)
    np.testing.assert_array_equal(partition(fast), partition(ref))
    np.testing.assert_array_equal(partition(fast), partition(cells + 1))


def test_compact_round_trip():
    labels = np.array([[7, 0, 7], [300, 300, 2**40]], np.uint64)
    ids, index = compact(labels)
    np.testing.assert_array_equal(ids, [0, 7, 300, 2**40])
    assert index.dtype == np.uint8
    np.testing.assert_array_equal(ids[index], labels)
