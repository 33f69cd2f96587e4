"""Raw intensities as the model sees them."""

from __future__ import annotations

import numpy as np


def normalize_raw(data: np.ndarray) -> np.ndarray:
    """Raw intensities as float32: integers scaled by their dtype maximum to [0, 1]
    (``x / iinfo(dtype).max``), booleans as 0/1, floats unchanged."""
    if np.issubdtype(data.dtype, np.integer):
        info = np.iinfo(data.dtype)
        return data.astype(np.float32) / float(info.max)
    if data.dtype == bool:
        return data.astype(np.float32)
    return data.astype(np.float32, copy=False)


def object_means(raw: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean raw intensity of each non-zero label, in ascending id order (float64)."""
    raw = np.asarray(raw, np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if raw.shape != labels.shape:
        raise ValueError(f"raw: {raw.size} values for {labels.size} labels")
    ids, index = np.unique(labels, return_inverse=True)
    sums = np.bincount(index, weights=raw, minlength=len(ids))
    counts = np.bincount(index, minlength=len(ids))
    keep = ids != 0
    return sums[keep] / counts[keep]


def dim_object_ratio(means: np.ndarray, low: float, percentile: float = 10.0,
                     min_objects: int = 5) -> float | None:
    """How dim the dim objects are: ``P_p(m - low) / median(m - low)`` over the objects'
    mean intensities ``m`` above the background level ``low`` (1 = all alike, 0.2 = the
    dimmest 10 % at a fifth of the typical contrast). None with fewer than
    ``min_objects`` objects or no positive median contrast."""
    contrast = np.asarray(means, np.float64) - float(low)
    if contrast.size < min_objects:
        return None
    median = float(np.median(contrast))
    if not median > 0:
        return None
    return float(np.clip(np.percentile(contrast, percentile) / median, 0.0, 1.0))
