"""dacapo.ops.class_segmentation against brute-force twins: the argmax / threshold mask by
loops over voxels, connected components by scipy.ndimage.label (face connectivity) with
the size filter by counting."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage

from dacapo.ops.class_segmentation import class_mask, connected_components
from tests.references import same_partition


def _brute_components(mask: np.ndarray, min_size: int) -> np.ndarray:
    labels, n = ndimage.label(mask)  # default structure: face connectivity
    for i in range(1, n + 1):
        if np.count_nonzero(labels == i) < min_size:
            labels[labels == i] = 0
    return labels


@pytest.mark.parametrize("shape", [(6, 14, 15), (23, 19)])
@pytest.mark.parametrize("min_size", [0, 1, 4])
def test_connected_components_match_scipy(shape, min_size):
    rng = np.random.default_rng(len(shape) * 10 + min_size)
    mask = rng.random(shape) < 0.45
    got = connected_components(mask, min_size)
    assert got.dtype == np.uint64
    assert same_partition(got, _brute_components(mask, min_size))


def test_class_mask_argmax_and_threshold_by_loops():
    rng = np.random.default_rng(0)
    prediction = rng.random((4, 3, 5, 6)).astype(np.float32)
    for k in range(3):
        argmax = class_mask(prediction, k)
        thresholded = class_mask(prediction, k, threshold=0.5, channel_offset=1)
        for z, y, x in itertools.product(*map(range, prediction.shape[1:])):
            values = list(prediction[:, z, y, x])
            assert argmax[z, y, x] == (values.index(max(values)) == k)
            assert thresholded[z, y, x] == (values[1 + k] > 0.5)


def test_connected_components_refuses_1d():
    with pytest.raises(ValueError, match="2D or 3D"):
        connected_components(np.ones(5, bool))
