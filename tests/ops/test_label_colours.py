"""`dacapo.ops.label_colours` against a per-id transcription of its definition (Python ints,
``colorsys``)."""

from __future__ import annotations

import colorsys

import numpy as np

from dacapo.ops.label_colours import hsv_to_rgb, label_rgb


def _colour(k: int) -> tuple[float, float, float]:
    """The module docstring's formula, one id at a time."""
    if k == 0:
        return (0.0, 0.0, 0.0)
    h = (k * 0x9E3779B97F4A7C15) % 2**64
    return colorsys.hsv_to_rgb(h / 2**64, 0.55 + 0.45 * ((h >> 8) % 256) / 255,
                               0.75 + 0.25 * (h % 256) / 255)


def test_label_colours_match_the_definition_per_id():
    rng = np.random.default_rng(0)
    labels = np.concatenate([np.arange(0, 300), rng.integers(0, 2**63, 200, dtype=np.int64),
                             [2**32 + 1, 2**40]]).astype(np.uint64)
    labels = rng.permutation(labels).reshape(2, -1)
    rgb = label_rgb(labels)
    assert rgb.shape == (*labels.shape, 3)
    expected = np.array([[_colour(int(k)) for k in row] for row in labels])
    np.testing.assert_allclose(rgb, expected, atol=1e-9)
    assert np.all(rgb[labels == 0] == 0)


def test_a_colour_depends_on_its_id_alone_and_neighbours_differ():
    small = label_rgb(np.array([5, 6, 7]))
    big = label_rgb(np.array([[7, 0], [9, 5]]))
    np.testing.assert_array_equal(small[0], big[1, 1])
    np.testing.assert_array_equal(small[2], big[0, 0])
    colours = label_rgb(np.arange(1, 65))
    gaps = np.abs(np.diff(colours, axis=0)).max(axis=1)
    assert gaps.min() > 0.1  # consecutive ids are told apart
    assert colours.max(axis=1).min() >= 0.75  # none too dark to see on black


def test_hsv_to_rgb_is_colorsys():
    hsv = np.random.default_rng(1).random((500, 3))
    expected = np.array([colorsys.hsv_to_rgb(*v) for v in hsv])
    np.testing.assert_allclose(hsv_to_rgb(hsv), expected, atol=1e-12)
