"""Intensity normalisation of raw data from statistics of the training raw.

A model sees raw values mapped by one affine function fixed at training time, so that a
new volume of the same kind is presented on the same scale (nnU-Net's recipe: statistics
of the training data, computed once, stored with the model):

- ``percentile``: ``(x - p_low) / (p_high - p_low)``, the ``lower``/``upper`` percentiles
  (default 0.5 and 99.5) of the training raw mapped to 0 and 1 (values outside stay
  outside: no clipping, so bright/dark outliers keep their order);
- ``meanstd``: ``(x - mean) / std`` (z-score);
- ``dtype_max``: integers divided by their dtype's maximum (the older default; floats
  unchanged), which depends on the storage type rather than the data.

Statistics are computed on at most ``max_samples`` values taken at a fixed stride (exact
for smaller arrays, deterministic always).
"""

from __future__ import annotations

import numpy as np

from dacapo.ops.intensity import normalize_raw

METHODS = ("percentile", "meanstd", "dtype_max")


def sample_values(data: np.ndarray, max_samples: int = 2_000_000) -> np.ndarray:
    """Every ``ceil(size / max_samples)``-th value of ``data`` (flattened), as float64."""
    flat = np.asarray(data).reshape(-1)
    step = max(1, -(-flat.size // max_samples))
    return flat[::step].astype(np.float64)


def intensity_statistics(samples: list[np.ndarray], lower: float = 0.5,
                         upper: float = 99.5) -> dict[str, float]:
    """``{"low", "high", "mean", "std"}`` of the values of all ``samples`` pooled:
    the ``lower``/``upper`` percentiles (numpy's linear interpolation), mean and standard
    deviation (population). ValueError when there is no value or they are not finite."""
    values = np.concatenate([np.asarray(s, dtype=np.float64).reshape(-1) for s in samples])
    if values.size == 0:
        raise ValueError("raw: no values to compute intensity statistics from")
    if not np.all(np.isfinite(values)):
        raise ValueError("raw: NaN or Inf among the values of the intensity statistics")
    low, high = np.percentile(values, [lower, upper])
    return {"low": float(low), "high": float(high), "mean": float(values.mean()),
            "std": float(values.std())}


def dark_fraction(values: np.ndarray, low: float, high: float, margin: float = 0.05) -> float:
    """Fraction of ``values`` at or below ``low + margin · (high − low)``: the dark
    background of sparse fluorescence, counted within ``margin`` of the dynamic range
    (``low``/``high``: the training raw's lower/upper percentiles) above its floor, so that
    a camera offset, noise or a few hot pixels do not hide it (a count of the values at
    exactly ``low`` does)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return 0.0
    return float(np.mean(values <= low + margin * (high - low)))


def affine_parameters(method: str, stats: dict[str, float] | None) -> tuple[float, float]:
    """``(offset, scale)`` with ``normalised = (x - offset) * scale`` for ``method``."""
    if method not in ("percentile", "meanstd"):
        raise ValueError(f"normalization: method must be one of {METHODS}, got {method!r}")
    if not stats:
        raise ValueError(f"normalization: method {method!r} needs statistics of the training raw")
    if method == "percentile":
        offset, span = stats["low"], stats["high"] - stats["low"]
    else:
        offset, span = stats["mean"], stats["std"]
    if not span > 0:
        raise ValueError(
            f"normalization: the training raw is constant (statistics {stats}); cannot scale it"
        )
    return float(offset), 1.0 / float(span)


def normalize(data: np.ndarray, method: str, stats: dict[str, float] | None = None) -> np.ndarray:
    """``data`` as float32 normalised by ``method`` (see the module docstring)."""
    if method == "dtype_max":
        return normalize_raw(np.asarray(data))
    offset, scale = affine_parameters(method, stats)
    out = np.asarray(data, dtype=np.float32) - np.float32(offset)
    out *= np.float32(scale)
    return out
