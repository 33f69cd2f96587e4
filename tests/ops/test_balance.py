"""Class-balancing weights (dacapo.ops.balance) against a per-voxel transcription of its definition."""

from __future__ import annotations

import numpy as np
import pytest

from dacapo.ops.balance import balance_weights, class_counts
from tests.references import brute_weights


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("num_classes", [2, 4])
def test_random_vs_brute_force(seed, num_classes):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, (2, 6, 7))
    mask = rng.random((1 if seed % 2 else 2, 6, 7)) < 0.7
    previous = rng.integers(0, 30, (2, num_classes))
    for prev in (None, previous):
        got_w, got_c = balance_weights(labels, mask, num_classes, 0.1, 0.8, prev)
        ref_w, ref_c = brute_weights(labels, mask, num_classes, 0.1, 0.8, prev)
        assert got_w.dtype == np.float32 and got_w.shape == labels.shape
        np.testing.assert_allclose(got_w, ref_w, rtol=1e-6)
        np.testing.assert_array_equal(got_c, ref_c)


def test_equal_total_weight_per_class_within_mask():
    rng = np.random.default_rng(1)
    labels = (rng.random((1, 20, 30)) < 0.3).astype(np.uint8)  # ~30 % foreground
    mask = rng.random((1, 20, 30)) < 0.8
    w, counts = balance_weights(labels, mask, 2, clipmin=0.05, clipmax=0.95)
    inside = mask[0]
    per_class = [w[0][inside & (labels[0] == k)].sum() for k in (0, 1)]
    n_masked = inside.sum()
    np.testing.assert_allclose(per_class, [n_masked / 2, n_masked / 2], rtol=1e-5)
    assert np.all(w[0][~inside] == 0)
    np.testing.assert_array_equal(counts[0], [np.sum(inside & (labels[0] == k)) for k in (0, 1)])


def test_clip_bounds_by_hand():
    # 1 foreground voxel in 100: f = 0.01 clipped to 0.05 -> w = 1 / (2 * 0.05) = 10;
    # background f = 0.99 clipped to 0.95 -> w = 1 / 1.9
    labels = np.zeros((1, 100), np.uint8)
    labels[0, 3] = 1
    w, _ = balance_weights(labels, None, 2, clipmin=0.05, clipmax=0.95)
    assert w[0, 3] == pytest.approx(10.0)
    assert w[0, 0] == pytest.approx(1 / 1.9)
    # without clipping (bounds 0.001..1) the rare class gets 1 / (2 * 0.01) = 50
    w, _ = balance_weights(labels, None, 2, clipmin=0.001, clipmax=1.0)
    assert w[0, 3] == pytest.approx(50.0)
    assert w[0, 0] == pytest.approx(1 / (2 * 0.99))


def test_moving_counts_accumulate_and_stabilise():
    """Counts add up over calls; weights follow the running fractions, not the batch."""
    a = np.array([[[0, 0, 0, 1]]], np.uint8)  # batch fraction fg 1/4
    b = np.array([[[1, 1, 1, 0]]], np.uint8)  # batch fraction fg 3/4
    w_a, counts = balance_weights(a, None, 2, 0.01, 0.99)
    np.testing.assert_array_equal(counts, [[3, 1]])
    assert w_a[0, 0, 3] == pytest.approx(1 / (2 * 0.25))
    w_b, counts = balance_weights(b, None, 2, 0.01, 0.99, moving_counts=counts)
    np.testing.assert_array_equal(counts, [[4, 4]])
    np.testing.assert_allclose(w_b, 1.0)  # running fractions 1/2 each
    # the input counts are not modified in place
    before = counts.copy()
    balance_weights(a, None, 2, 0.01, 0.99, moving_counts=counts)
    np.testing.assert_array_equal(counts, before)


def test_fully_masked_out_channel_gets_zero():
    labels = np.array([[[0, 1], [1, 1]], [[0, 1], [0, 0]]], np.uint8)
    mask = np.ones_like(labels)
    mask[1] = 0
    w, counts = balance_weights(labels, mask, 2)
    assert np.all(w[1] == 0) and np.all(np.isfinite(w))
    np.testing.assert_array_equal(counts, [[1, 3], [0, 0]])
    np.testing.assert_array_equal(class_counts(labels, mask != 0, 2), counts)


def test_bool_labels_and_determinism():
    rng = np.random.default_rng(0)
    labels = rng.random((3, 5, 6, 7)) < 0.4
    w1, c1 = balance_weights(labels, None, 2)
    w2, c2 = balance_weights(labels.astype(np.int64), None, 2)
    np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(c1, c2)


def test_errors_name_the_input():
    labels = np.zeros((1, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="labels"):
        balance_weights(labels + 2, None, 2)
    with pytest.raises(ValueError, match="labels"):
        balance_weights(labels.astype(np.float32), None, 2)
    with pytest.raises(ValueError, match="mask"):
        balance_weights(labels, np.ones((1, 4, 5)), 2)
    with pytest.raises(ValueError, match="moving_counts"):
        balance_weights(labels, None, 2, moving_counts=np.zeros((1, 3)))
    with pytest.raises(ValueError, match="clip"):
        balance_weights(labels, None, 2, clipmin=0.6, clipmax=0.4)
