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
