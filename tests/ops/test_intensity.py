"""`dacapo.ops.intensity`: raw integers scaled to [0, 1] by their dtype's maximum."""

from __future__ import annotations

import numpy as np

from dacapo.ops.intensity import normalize_raw


def test_intensity_raw_normalisation():
    assert normalize_raw(np.array([0, 255], np.uint8)).tolist() == [0.0, 1.0]
    assert normalize_raw(np.array([0, 65535], np.uint16)).tolist() == [0.0, 1.0]
    assert normalize_raw(np.array([0.5], np.float64)).dtype == np.float32


def test_object_means_against_a_loop():
    from dacapo.ops.intensity import object_means

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, (9, 11))
    labels[labels == 3] = 0  # an id that does not occur
    raw = rng.random((9, 11)) * 100
    expected = [raw[labels == i].mean() for i in (1, 2, 4, 5)]
    np.testing.assert_allclose(object_means(raw, labels), expected)


def test_dim_object_ratio_hand_computed():
    """Contrasts 1..10 above a background of 5: P10 = 1 + 0.1 * 9 = 1.9 (linear
    interpolation), median 5.5, ratio 1.9 / 5.5."""
    from dacapo.ops.intensity import dim_object_ratio

    means = np.arange(1, 11) + 5.0
    assert abs(dim_object_ratio(means, 5.0) - 1.9 / 5.5) < 1e-12
    assert dim_object_ratio(means[:4], 5.0) is None  # too few objects
    assert dim_object_ratio(means, 100.0) is None  # no contrast above the background
    assert dim_object_ratio(np.full(8, 7.0), 5.0) == 1.0
