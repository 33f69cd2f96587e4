"""Raw normalisation math (`dacapo.ops.normalize`): percentile and mean/std statistics by
hand, pooled samples and the sampling stride."""

from __future__ import annotations

import numpy as np
import pytest

from dacapo.ops.normalize import intensity_statistics, normalize, sample_values


def test_percentile_and_meanstd_by_hand():
    data = np.arange(101, dtype=np.uint8)  # 0..100: the p-th percentile is p
    stats = intensity_statistics([data], 10, 90)
    assert stats["low"] == pytest.approx(10) and stats["high"] == pytest.approx(90)
    assert stats["mean"] == pytest.approx(50) and stats["std"] == pytest.approx(np.sqrt(850))
    out = normalize(np.array([10, 50, 90, 130], np.uint8), "percentile", stats)
    assert out.dtype == np.float32
    assert out.tolist() == pytest.approx([0.0, 0.5, 1.0, 1.5])  # not clipped
    z = normalize(data, "meanstd", stats)
    assert z.mean() == pytest.approx(0, abs=1e-6) and z.std() == pytest.approx(1, rel=1e-6)
    assert normalize(np.array([0, 255], np.uint8), "dtype_max").tolist() == [0.0, 1.0]


def test_statistics_pool_samples_and_stride():
    a, b = np.zeros(50), np.full(50, 4.0)
    assert intensity_statistics([a, b], 0, 100) == pytest.approx(
        {"low": 0.0, "high": 4.0, "mean": 2.0, "std": 2.0})
    assert sample_values(np.arange(10), 3).tolist() == [0, 4, 8]  # stride ceil(10 / 3)


def test_dark_fraction_by_hand_and_brute_force():
    from dacapo.ops.normalize import dark_fraction

    # low 10, high 110: the threshold is 10 + 0.05 * 100 = 15; values <= 15: 10, 12, 15
    assert dark_fraction(np.array([10, 12, 15, 16, 60, 110]), 10.0, 110.0) == 3 / 6
    assert dark_fraction(np.array([], np.float64), 0.0, 1.0) == 0.0
    rng = np.random.default_rng(4)
    values = rng.normal(100, 30, 5000)
    for margin in (0.0, 0.05, 0.3):
        count = 0
        for v in values.tolist():  # one value at a time
            if v <= 20.0 + margin * (190.0 - 20.0):
                count += 1
        assert dark_fraction(values, 20.0, 190.0, margin) == count / values.size
