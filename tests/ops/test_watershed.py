"""`dacapo.ops.watershed`: the order-free fast path of the mutex watershed
(`attractive_components`) against ``mwatershed.agglom`` itself, the reference (same partition
wherever it is taken), and `compact`; the mutex watershed's conventions, seeded random strides
and min size on the synthetic volume (`watershed_volume`); the stitching pairs
(`majority_pairs`, `merge_components`), also against a per-id count."""

from __future__ import annotations

import fastremap
import mwatershed
import numpy as np
import pytest

from dacapo.ops.watershed import (
    attractive_components,
    compact,
    majority_pairs,
    merge_components,
    mutex_watershed,
    segment,
)
from tests.references import WATERSHED_OFFSETS as OFFSETS
from tests.references import watershed_volume


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


# ---------------------------------------------------------------- the mutex watershed


@pytest.fixture(scope="module")
def volume():
    return watershed_volume()


def test_mutex_watershed_conventions():
    # 1D chain along x: positive weights merge, negative split, singletons are 0
    affs = np.array([[[0.9, 0.9, 0.3, 0.45, 0.9]]])  # edges 0-1, 1-2, 2-3, 3-4, 4-out
    labels = mutex_watershed(affs, [(0, 1)], bias=0.5)[0]
    assert labels[0] == labels[1] == labels[2] != 0
    assert labels[3] == 0 and labels[4] == 0


def test_randomized_strides_are_seeded(volume):
    _, _, noisy = volume
    strides = [(1, 1, 1)] * 3 + [(2, 2, 2)] * 3
    a = segment(noisy, OFFSETS, 0.5, strides=strides, randomized_strides=True, seed=3)
    b = segment(noisy, OFFSETS, 0.5, strides=strides, randomized_strides=True, seed=3)
    c = segment(noisy, OFFSETS, 0.5, strides=strides, randomized_strides=True, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    d = segment(noisy, OFFSETS, 0.5, strides=strides)  # grid strides: deterministic
    np.testing.assert_array_equal(d, segment(noisy, OFFSETS, 0.5, strides=strides))


def test_min_size_filter(volume):
    labels, affs, _ = volume
    sizes = np.bincount(labels.ravel().astype(np.int64))
    cut = int(np.median(sizes[1:][sizes[1:] > 0]))
    seg = segment(affs, OFFSETS, 0.5, min_size=cut)
    kept = np.unique(labels[seg != 0])
    assert set(kept) == {i for i in range(1, len(sizes)) if sizes[i] >= cut}


def test_majority_pairs_and_components():
    auth = np.array([1, 1, 1, 2, 2, 0, 0, 3])
    ctx = np.array([7, 7, 8, 8, 8, 9, 9, 9])
    pairs = majority_pairs(auth, ctx)
    # 7 -> 1 (2/2); 8 -> 2 (2/3); 9: 0 holds 2/3, so no partner
    assert sorted(map(tuple, pairs.tolist())) == [(7, 1), (8, 2)]
    ids, roots = merge_components(np.array([[5, 3], [3, 9], [10, 11]], np.uint64))
    assert dict(zip(ids.tolist(), roots.tolist())) == {3: 3, 5: 3, 9: 3, 10: 10, 11: 10}


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("num_ids", [(4, 6), (300, 300)])  # dense table; sort (many ids)
def test_majority_pairs_brute_force(seed, num_ids):
    """Against a per-id count: each context id joins the authoritative id holding > half."""
    rng = np.random.default_rng(seed)
    auth = rng.integers(0, num_ids[0], (6, 7, 5)).astype(np.uint64) * 1000
    ctx = rng.integers(0, num_ids[1], (6, 7, 5)).astype(np.uint64)
    ctx[0, 0, :] = 5
    auth[ctx == 5] = 2000  # id 5 is mostly 2000: a guaranteed pair
    expected = set()
    for c in np.unique(ctx[ctx != 0]):
        where = ctx == c
        for a in np.unique(auth[where]):
            if a != 0 and 2 * np.count_nonzero(auth[where] == a) > np.count_nonzero(where):
                expected.add((int(c), int(a)))
    got = set(map(tuple, majority_pairs(auth, ctx).tolist()))
    assert got == expected and (5, 2000) in got


def test_renumbered_maps_back_to_the_labels():
    from dacapo.ops.watershed import renumbered

    labels = np.array([[0, 2**40 + 3, 7], [7, 0, 2**40 + 3]], np.uint64)
    dense, ids = renumbered(labels)
    np.testing.assert_array_equal(ids[dense], labels)
    assert sorted(np.unique(dense).tolist()) == [0, 1, 2] and ids[0] == 0
