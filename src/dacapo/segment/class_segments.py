"""Blockwise per-class segmentation: the per-block functions.

One class of a multi-class prediction (`dacapo.ops.class_segmentation.class_mask`: argmax,
prior-corrected argmax or threshold) as a mask (`semantic_block`, voxel-wise, no context) or as instances
(`components_block`: connected components of the mask on the block's read ROI, pass 1 of
the stitched segmentation `dacapo.segment.stitching.run_stitched`, which makes ids unique
across blocks and joins objects over block faces). `stack_block` writes several per-class
label images as the channels of one. Kept free of torch so that daisy workers start quickly.
"""

from __future__ import annotations

import numpy as np

from dacapo.blockwise.grid import BlockGeometry
from dacapo.ops.class_segmentation import class_mask, connected_components
from dacapo.segment.mutex_watershed import store_block_labels

__all__ = ["components_block", "semantic_block", "stack_block"]


def _channels_first(prediction: np.ndarray, dims: int) -> np.ndarray:
    return prediction[None] if prediction.ndim == dims else prediction


def semantic_block(prediction: np.ndarray, block, *, index: int, threshold: float | None,
                   channel_offset: int, prior: np.ndarray | None = None) -> np.ndarray:
    """The mask (uint8 0/1) of class ``index`` on the block (read ROI = write ROI)."""
    data = _channels_first(prediction, block.voxel_size.dims)
    mask = class_mask(data, index, threshold, channel_offset, prior)
    return mask[block.region].astype(np.uint8)


def components_block(prediction: np.ndarray, block, *, geometry: BlockGeometry, scratch: str,
                     index: int, threshold: float | None, channel_offset: int,
                     prior: np.ndarray | None = None) -> np.ndarray:
    """Pass 1: connected components of class ``index``'s mask on the block's read ROI ∩
    the volume (``min_size`` is applied to whole objects by the stitching pass)."""
    data = _channels_first(prediction, geometry.voxel_size.dims)
    valid = block.read_roi.intersect(geometry.total_roi)
    data = data[(slice(None),) + geometry.slices(valid, block.read_roi)]
    local = connected_components(class_mask(data, index, threshold, channel_offset, prior))
    return store_block_labels(local, block, geometry=geometry, scratch=scratch)


def stack_block(block, **classes: np.ndarray) -> np.ndarray:
    """The label images ``class_0, class_1, ...`` of the block as channels (uint64; the
    one image itself when there is one class: an output without a channel axis)."""
    stack = np.stack([np.asarray(classes[f"class_{c}"], np.uint64) for c in range(len(classes))])
    return stack if len(classes) > 1 else stack[0]
