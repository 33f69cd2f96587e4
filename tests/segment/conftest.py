"""Fixtures of the segmentation tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from funlib.persistence import prepare_ds

from tests.segment.references import VOXEL


def _write_prediction(path: Path | str, data: np.ndarray) -> str:
    dims = data.ndim - 1
    array = prepare_ds(str(path), shape=data.shape, offset=(80, 40, 40)[-dims:],
                       voxel_size=VOXEL[-dims:], axis_names=["c^"] + ["z", "y", "x"][-dims:],
                       dtype=data.dtype, mode="w")
    array[array.roi] = data
    return str(path)


@pytest.fixture(scope="session")
def write_prediction() -> Callable[[Path | str, np.ndarray], str]:
    """``write_prediction(path, data)``: ``data`` (channels first) as a zarr prediction at
    offset (80, 40, 40) with the synthetic volume's voxel size; returns the path."""
    return _write_prediction
