"""Colours of instance labels: a random-looking but deterministic colour per id, 0 black.

Id ``k > 0`` gets the colour of its Fibonacci hash ``h = (k · 0x9E3779B97F4A7C15) mod 2^64``
(Knuth, TAOCP vol. 3, §6.4: ``h / 2^64`` is the fractional part of ``k / φ``, so nearby
ids get far-apart hues) in HSV:

    hue        = h / 2^64
    saturation = 0.55 + 0.45 · ((h >> 8) mod 256) / 255
    value      = 0.75 + 0.25 · (h mod 256) / 255

converted to RGB (the hexcone model, Smith 1978; Python's ``colorsys.hsv_to_rgb``). The
colour of an id depends on the id alone: the same object has the same colour in every
picture, whatever else is in it.
"""

from __future__ import annotations

import numpy as np

#: 2^64 / φ, odd (Fibonacci hashing)
FIBONACCI = np.uint64(0x9E3779B97F4A7C15)


def label_hsv(ids: np.ndarray) -> np.ndarray:
    """HSV (in [0, 1], last axis) of the non-negative integer ``ids`` (module docstring)."""
    k = np.asarray(ids).astype(np.uint64)
    with np.errstate(over="ignore"):
        h = k * FIBONACCI  # wraps modulo 2^64
    hue = (h >> np.uint64(11)).astype(np.float64) / 2.0**53
    sat = 0.55 + 0.45 * ((h >> np.uint64(8)) & np.uint64(255)).astype(np.float64) / 255
    val = 0.75 + 0.25 * (h & np.uint64(255)).astype(np.float64) / 255
    return np.stack([hue, sat, val], axis=-1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """RGB of HSV values in [0, 1] (last axis), the hexcone model."""
    h, s, v = (hsv[..., i] for i in range(3))
    sector = np.floor(h * 6.0)
    f = h * 6.0 - sector
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    sector = sector.astype(np.int64) % 6
    choices = [np.stack(c, axis=-1) for c in
               ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))]
    rgb = np.zeros(hsv.shape, dtype=np.float64)
    for i, c in enumerate(choices):
        rgb[sector == i] = c[sector == i]
    return rgb


def label_rgb(labels: np.ndarray) -> np.ndarray:
    """``labels`` (integer ids, any shape) as RGB in [0, 1] (a new last axis of 3): each id
    its colour (module docstring), 0 black. Colours are computed once per distinct id."""
    labels = np.asarray(labels)
    ids, inverse = np.unique(labels, return_inverse=True)
    colours = hsv_to_rgb(label_hsv(np.maximum(ids, 0)))
    colours[ids == 0] = 0.0
    return colours[inverse.reshape(labels.shape)]
