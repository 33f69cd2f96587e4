"""What validation and application hold in memory: the limit, and the hand-over of a
prediction to the post-processor (in memory in one block, or as a path: blockwise)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from funlib.persistence import Array

from dacapo.io.arrays import in_memory, read_array

#: predictions with at most this many values are post-processed in memory
IN_MEMORY_VOXELS = 2**25


def crop_array(array: Array, roi) -> Array:
    """``roi`` of ``array`` read into memory (an `Array` with the same geometry)."""
    data = read_array(array, roi)
    return Array(in_memory(data), offset=roi.offset, voxel_size=array.voxel_size,
                 axis_names=array.axis_names, units=array.units)


def set_prediction(post_processor, prediction: Array, path: str | Path,
                   limit: int = IN_MEMORY_VOXELS) -> None:
    """Hand ``prediction`` (stored at ``path``) to ``post_processor``: in memory when it has
    at most ``limit`` values (one block, no worker start-up), else as the zarr path
    (blockwise)."""
    if int(np.prod(prediction.shape)) <= limit:
        post_processor.set_prediction(crop_array(prediction, prediction.roi))
    else:
        post_processor.set_prediction(str(path))
