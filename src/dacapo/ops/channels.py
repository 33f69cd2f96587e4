"""Ground truth layouts -> one array per semantic channel."""

from __future__ import annotations

import numpy as np


def gt_to_channels(data: np.ndarray, num_channels: int, dims: int, name: str = "gt") -> np.ndarray:
    """Per-channel GT with a leading channel axis of length ``num_channels``.

    Accepted layouts (the choice for Distance/InnerDistance/HotDistance tasks):
    - ``(C, *spatial)``: one array per channel, returned as is;
    - ``(*spatial)`` or ``(1, *spatial)`` with ``C == 1``: returned with a channel axis;
    - ``(*spatial)`` or ``(1, *spatial)`` with ``C > 1``: class ids, channel i = (gt == i + 1).
    Raises ValueError naming ``name`` for any other shape.
    """
    if data.ndim == dims + 1 and data.shape[0] == num_channels:
        return data
    if data.ndim == dims + 1 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != dims:
        raise ValueError(
            f"{name}: expected {num_channels} channel(s) over {dims} spatial dims "
            f"(or one class-id array), got shape {data.shape}"
        )
    if num_channels == 1:
        return data[None]
    return np.stack([data == i + 1 for i in range(num_channels)]).astype(data.dtype)
