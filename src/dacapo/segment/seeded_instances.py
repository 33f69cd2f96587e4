"""Blockwise instances from distances: the per-block function of pass 1.

Each block segments one prediction channel on its read ROI ∩ the volume with
`dacapo.ops.distance_instances.distance_instances`; ids, stitching and relabelling are
those of the blockwise mutex watershed (`dacapo.segment.stitching.run_stitched`). Kept
free of torch so that daisy workers start quickly.
"""

from __future__ import annotations

import numpy as np

from dacapo.blockwise.grid import BlockGeometry
from dacapo.ops.distance_instances import distance_instances
from dacapo.segment.mutex_watershed import store_block_labels


def distance_instances_block(prediction: np.ndarray, block, *, geometry: BlockGeometry, scratch: str,
                             channel: int, threshold: float, seed_threshold: float,
                             h: float | None, min_seed_distance: float) -> np.ndarray:
    """Pass 1: instances of ``prediction[channel]`` in the block (with context)."""
    dims = geometry.voxel_size.dims
    data = prediction[None] if prediction.ndim == dims else prediction
    valid = block.read_roi.intersect(geometry.total_roi)
    f = np.asarray(data[(channel,) + geometry.slices(valid, block.read_roi)], dtype=np.float32)
    local = distance_instances(f, tuple(geometry.voxel_size), threshold, seed_threshold, h,
                               min_seed_distance)
    return store_block_labels(local, block, geometry=geometry, scratch=scratch)
