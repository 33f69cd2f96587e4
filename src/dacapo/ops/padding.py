"""Index maps of boundary padding, to read context beyond the edge of a volume."""

from __future__ import annotations

import numpy as np


def reflect_index(index: np.ndarray, n: int) -> np.ndarray:
    """Indices ``index`` (any integers) of an axis of length ``n`` mirrored into ``[0, n)``
    about the first and last voxel, the edge voxel not repeated (numpy's ``np.pad`` mode
    ``"reflect"``: ``… 2 1 | 0 1 2 … n-1 | n-2 …``): with period ``p = 2 (n - 1)``,
    ``j = i mod p`` and ``j -> p - j`` where ``j >= n``. A length-1 axis maps all to 0."""
    index = np.asarray(index, dtype=np.int64)
    if n <= 0:
        raise ValueError(f"axis length must be >= 1, got {n}")
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    j = np.mod(index, period)
    return np.where(j >= n, period - j, j)
