"""Sections of a label volume that were labelled apart from their neighbours.

Dense instance labels of a stack keep one id per object from section to section: in a
confocal or EM volume most voxels have the id of the voxel above them. A section whose
voxels share (almost) no id with either neighbour — while the volume's other sections
share most — was labelled on its own (a re-labelled or pasted 2D segmentation): an
affinity or distance target across it teaches boundaries the raw does not show.
"""

from __future__ import annotations

import numpy as np

#: a section is apart when at most this fraction of its voxels keeps its neighbour's id
MAX_SHARED = 0.05
#: ... while the median fraction over the volume's section pairs is at least this
MIN_TYPICAL = 0.5


def shared_fractions(labels: np.ndarray) -> np.ndarray:
    """c[z] = among the voxels labelled (non-zero) in both ``labels[z]`` and ``labels[z + 1]``,
    the fraction with the same id (length Z - 1; NaN where no voxel is labelled in both)."""
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels: expected a 3D volume, got shape {labels.shape}")
    both = ((labels[:-1] != 0) & (labels[1:] != 0)).reshape(len(labels) - 1, -1)
    same = (labels[:-1] == labels[1:]).reshape(len(labels) - 1, -1) & both
    n = both.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, same.sum(axis=1) / np.maximum(n, 1), np.nan)


def sections_apart(labels: np.ndarray, max_shared: float = MAX_SHARED,
                   min_typical: float = MIN_TYPICAL) -> list[int]:
    """Sections z (first axis) whose shared fraction with every existing neighbour is
    ``<= max_shared`` while the median of `shared_fractions` (NaN ignored) is
    ``>= min_typical``; [] for fewer than 3 sections."""
    labels = np.asarray(labels)
    if labels.ndim != 3 or labels.shape[0] < 3:
        return []
    c = shared_fractions(labels)
    if np.all(np.isnan(c)) or np.nanmedian(c) < min_typical:
        return []
    low = c <= max_shared  # NaN (nothing labelled on both sides): not low
    apart = []
    for z in range(labels.shape[0]):
        sides = ([low[z - 1]] if z > 0 else []) + ([low[z]] if z < len(c) else [])
        if all(sides):
            apart.append(z)
    return apart
