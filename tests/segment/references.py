"""The segmentation tests' (mutex watershed, fragments + agglomeration) voxel size and VOI with
the background counted like any label; their synthetic volumes are in tests/references.py."""

from __future__ import annotations

import numpy as np
from funlib.geometry import Coordinate

from dacapo.ops.instance_metrics import contingency_table, variation_of_information

VOXEL = Coordinate(8, 4, 4)


def full_voi(a: np.ndarray, b: np.ndarray) -> float:
    """VOI (bits) between two labelings, label 0 counted as a label like any other."""
    split, merge = variation_of_information(
        contingency_table(a.astype(np.uint64) + 1, b.astype(np.uint64) + 1)
    )
    return split + merge
