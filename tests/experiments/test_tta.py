"""Flip test-time augmentation (dacapo.experiments.tta) against numpy twins."""

from __future__ import annotations

from itertools import product
from types import SimpleNamespace

import numpy as np
import torch

from dacapo.experiments.tasks import AffinitiesTaskConfig
from dacapo.experiments.tta import (
    FlipPlan,
    flip_plan,
    flip_sets,
    forward,
    forward_passes,
    problems,
)

OFFSETS = ((1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 3, 0), (0, 0, 2))


def test_flip_mean_equals_numpy_twin():
    torch.manual_seed(0)
    model = torch.nn.Conv3d(1, 2, (1, 3, 3), padding=(0, 1, 1))
    x = torch.randn(1, 1, 2, 7, 9)
    with torch.no_grad():
        got = forward(model, x, FlipPlan()).numpy()
        ref = np.zeros_like(got)
        for fy in (False, True):
            for fx in (False, True):
                axes = tuple(a for a, on in ((3, fy), (4, fx)) if on)
                xi = np.flip(x.numpy(), axes) if axes else x.numpy()
                y = model(torch.from_numpy(np.ascontiguousarray(xi))).numpy()
                ref += np.flip(y, axes) if axes else y
        assert np.allclose(got, ref / 4, atol=1e-6)
        assert np.array_equal(forward(model, x).numpy(), model(x).numpy())
    assert flip_sets(3) == [(), (4,), (3,), (3, 4)]
    # the passes a validation costs: the 4 flips above, or the plain one
    assert forward_passes(3, True) == 4 and forward_passes(2, True) == 4
    assert forward_passes(3, False) == 1


def _exact_affinities(x: np.ndarray) -> np.ndarray:
    """A flip-equivariant 'model': 1 where x[u] == x[u + o] (0 where u + o is outside)."""
    labels = x[0, 0]
    out = np.zeros((1, len(OFFSETS)) + labels.shape, np.float32)
    for c, o in enumerate(OFFSETS):
        for u in np.ndindex(labels.shape):
            v = tuple(a + b for a, b in zip(u, o))
            if all(0 <= a < n for a, n in zip(v, labels.shape)):
                out[0, c][u] = float(labels[u] == labels[v])
    return out


def test_affinity_flips_give_back_an_exact_model():
    """An exact affinity function is flip-equivariant: the mapped mean is itself (a
    channel mapped without its shift or to the wrong offset would differ)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, (1, 1, 3, 6, 7)).astype(np.float32)
    got = forward(_exact_affinities, x, FlipPlan(OFFSETS))
    assert np.array_equal(got, _exact_affinities(x))


def test_affinity_flip_mean_equals_brute_force():
    """Each voxel r and offset p: in a pass flipped on S, the link of r and r + p is the
    link of F(r) and F(r + p) in the flipped image, read from that output's channel."""
    torch.manual_seed(1)
    model = torch.nn.Conv3d(1, len(OFFSETS), (1, 3, 3), padding=(0, 1, 1))
    x = np.random.default_rng(1).normal(size=(1, 1, 2, 6, 5)).astype(np.float32)

    def run(a):
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(a))).numpy()

    got = forward(run, x, FlipPlan(OFFSETS))
    shape = x.shape[2:]
    index = {o: c for c, o in enumerate(OFFSETS)}
    ref = np.zeros_like(got)
    for t, p in enumerate(OFFSETS):
        for r in np.ndindex(shape):
            values = []
            for fy, fx in product((False, True), repeat=2):
                flipped = {1: fy, 2: fx}
                y = run(np.flip(x, tuple(a + 2 for a, on in flipped.items() if on)))

                a, b = (tuple(n - 1 - v if flipped.get(i) else v
                              for i, (v, n) in enumerate(zip(u, shape)))
                        for u in (r, tuple(v + w for v, w in zip(r, p))))
                d = tuple(w - v for v, w in zip(a, b))
                if d in index:
                    values.append(y[0, index[d]][a])
                elif all(0 <= v < n for v, n in zip(b, shape)):
                    values.append(y[0, index[tuple(-v for v in d)]][b])
            ref[0, t][r] = np.mean(values)
    assert np.allclose(got, ref, atol=1e-6)


def _rc(**task):
    return SimpleNamespace(task_config=AffinitiesTaskConfig("a", **task), test_time_flips=True)


def test_affinity_flip_plan_and_problems():
    rc = _rc(neighborhood=[(1, 0, 0), (0, 8, 0)])
    assert problems(rc) == []
    assert flip_plan(rc) == FlipPlan(((1, 0, 0), (0, 8, 0)))
    assert problems(_rc(neighborhood=[(1, 0, 0)], lsds=True))[0].startswith(
        "test_time_flips: not for a AffinitiesTaskConfig with lsds")
    assert "not closed under in-plane flips" in problems(
        _rc(neighborhood=[(0, 1, 1)]))[0]
    assert problems(_rc(neighborhood=[(0, 1, 1), (0, 1, -1)])) == []
    assert flip_plan(SimpleNamespace(task_config=None, test_time_flips=False)) is None
