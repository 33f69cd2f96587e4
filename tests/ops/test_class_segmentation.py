"""dacapo.ops.class_segmentation against brute-force twins: the argmax / threshold mask by
loops over voxels, connected components by scipy.ndimage.label (face connectivity) with
the size filter by counting."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage

from dacapo.ops.class_segmentation import class_mask, connected_components, prior_weights
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


def test_prior_corrected_argmax_by_loops_and_by_hand():
    rng = np.random.default_rng(1)
    prediction = rng.random((3, 4, 5, 6)).astype(np.float32)
    prior = prior_weights([0.7, 0.02, 0.28], 1.5, 0.05, 0.95)
    np.testing.assert_allclose(prior, [0.7 ** 1.5, 0.05 ** 1.5, 0.28 ** 1.5])  # 0.02 clipped
    for k in range(3):
        got = class_mask(prediction, k, prior=prior)
        for z, y, x in itertools.product(*map(range, prediction.shape[1:])):
            values = [prior[j] * prediction[j, z, y, x] for j in range(3)]
            assert got[z, y, x] == (values.index(max(values)) == k)
    # by hand: p = (0.3, 0.6, 0.1), fractions (0.75, 0.05, 0.2), tau 1 -> 0.225, 0.03, 0.02
    p = np.array([0.3, 0.6, 0.1], np.float32).reshape(3, 1, 1)
    pi = prior_weights([0.75, 0.05, 0.2], 1.0, 0.05, 0.95)
    assert class_mask(p, 1)[0, 0] and class_mask(p, 0, prior=pi)[0, 0]
    assert class_mask(p, 1, prior=prior_weights([0.75, 0.05, 0.2], 0.0, 0.05, 0.95))[0, 0]


def test_tau_one_undoes_class_balanced_weights():
    """Bayes: a softmax trained with weights w_k = 1 / (C f_k) estimates q_k ∝ w_k P(k|x);
    the corrected argmax at tau = 1 is the argmax of P(k|x) itself."""
    rng = np.random.default_rng(2)
    fractions = np.array([0.6, 0.3, 0.1])
    posterior = rng.dirichlet(np.ones(3), size=(7, 9)).transpose(2, 0, 1)
    weighted = posterior / (3 * fractions)[:, None, None]
    weighted /= weighted.sum(axis=0)
    pi = prior_weights(fractions, 1.0, 0.05, 0.95)
    truth = np.argmax(posterior, axis=0)
    assert (np.argmax(weighted, axis=0) != truth).any()  # the balancing moved some voxels
    for k in range(3):
        np.testing.assert_array_equal(class_mask(weighted, k, prior=pi), truth == k)
