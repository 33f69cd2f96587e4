"""Brute-force references shared by the ops tests: IoU by explicit loops over objects, and
the touching Voronoi objects they are checked on (tests/README.md says which shared code lives
where)."""

from __future__ import annotations

import numpy as np


def brute_ious(pred, truth):
    """(GT ids, pred ids, IoU matrix) by explicit loops over the objects' masks."""
    t_ids = [int(i) for i in np.unique(truth) if i != 0]
    p_ids = [int(j) for j in np.unique(pred) if j != 0]
    iou = np.zeros((len(t_ids), len(p_ids)))
    for a, i in enumerate(t_ids):
        for b, j in enumerate(p_ids):
            ti, pj = truth == i, pred == j
            iou[a, b] = np.logical_and(ti, pj).sum() / np.logical_or(ti, pj).sum()
    return t_ids, p_ids, iou


def voronoi(shape, seeds, radius):
    """Label image: each voxel takes 1 + the index of its nearest seed, 0 beyond radius."""
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    dist = np.linalg.norm(grid[..., None, :] - seeds, axis=-1)
    return np.where(dist.min(-1) <= radius, dist.argmin(-1) + 1, 0)


def random_pair(rng, shape, n_objects, jitter=2.0):
    """Touching Voronoi objects as GT; the prediction moves each seed at random, drops one
    object, adds one and gives the objects other ids."""
    seeds = rng.uniform(0, 1, (n_objects, len(shape))) * np.array(shape)
    radius = 0.5 * min(shape) / max(1.0, n_objects ** (1 / len(shape)) / 1.5)
    truth = voronoi(shape, seeds, radius)
    moved = seeds + rng.normal(0, jitter, seeds.shape)
    moved = np.vstack([moved[1:], rng.uniform(0, 1, (1, len(shape))) * np.array(shape)])
    pred = voronoi(shape, moved, radius)
    relabel = np.concatenate([[0], rng.permutation(n_objects) + 3])
    return relabel[pred], truth
