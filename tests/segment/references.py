"""The synthetic volume of the segmentation tests (mutex watershed, fragments + agglomeration):
its voxel size, its labels, and VOI with the background counted like any label."""

from __future__ import annotations

import numpy as np
from funlib.geometry import Coordinate
from scipy import ndimage

from dacapo.ops.instance_metrics import contingency_table, variation_of_information
from tests.references import label_edges

VOXEL = Coordinate(8, 4, 4)


def make_labels(shape=(32, 32, 32), num=12, seed=0) -> np.ndarray:
    """Voronoi cells of random seeds, cut to balls (convex, so connected), with gaps."""
    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, np.uint64)
    points = np.stack([rng.integers(0, s, num) for s in shape], axis=1)
    seeds[tuple(points.T)] = np.arange(1, num + 1)
    dist, idx = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    labels = seeds[tuple(idx)]
    labels[dist > 9] = 0
    labels[label_edges(labels)] = 0  # one-voxel gaps between touching cells
    return labels


def full_voi(a: np.ndarray, b: np.ndarray) -> float:
    """VOI (bits) between two labelings, label 0 counted as a label like any other."""
    split, merge = variation_of_information(
        contingency_table(a.astype(np.uint64) + 1, b.astype(np.uint64) + 1)
    )
    return split + merge
