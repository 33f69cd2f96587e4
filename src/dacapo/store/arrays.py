"""Opening arrays (funlib `Array`s as they are, zarr paths read-only) and zero-padded reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array


def open_array(array: Array | str | Path, name: str, mode: str = "r") -> Array:
    """An `Array` as is, or a zarr array path (or OME-NGFF image, level 0) opened
    (read-only by default).

    Errors name the array (``name``) and the path.
    """
    if isinstance(array, Array):
        return array
    from dacapo.store.ome import open_ds  # plain zarr arrays and OME-NGFF images

    path = Path(array)
    if not path.exists():
        raise FileNotFoundError(f"{name}: no array at {str(array)!r}")
    try:
        return open_ds(str(array), mode=mode)
    except Exception as e:  # noqa: BLE001 - rephrase any opening error with the array's name
        raise ValueError(f"{name}: cannot open array {str(array)!r}: {e}") from e


def in_memory(data: np.ndarray):
    """``data`` as a one-chunk dask array with a random name, for a funlib `Array`: built
    from a numpy array, an `Array` hashes the data for a dask name (~4 ms per 4 MB), and
    reads would be split into chunks."""
    import dask.array as da

    return da.from_array(data, chunks=data.shape, name=False)


def read_padded(data, data_roi: Roi, voxel_size: Coordinate, roi: Roi,
                fill_value=0) -> np.ndarray:
    """``roi`` of ``data`` (a numpy or zarr array covering ``data_roi``, leading channel
    axes allowed), ``fill_value`` outside ``data_roi``; always a new array.

    Indexes ``data`` directly: for zarr about twice as fast as funlib's dask path
    (`Array.to_ndarray`), for numpy a plain copy.
    """
    inside = roi.intersect(data_roi)
    if inside == roi:
        src = ((roi - data_roi.offset) / voxel_size).to_slices()
        out = data[(Ellipsis, *src)]
        return out.copy() if isinstance(data, np.ndarray) else np.asarray(out)
    lead = tuple(data.shape[: len(data.shape) - voxel_size.dims])
    out = np.full(lead + tuple(roi.shape / voxel_size), fill_value, dtype=data.dtype)
    if not inside.empty:
        src = ((inside - data_roi.offset) / voxel_size).to_slices()
        dst = ((inside - roi.offset) / voxel_size).to_slices()
        out[(Ellipsis, *dst)] = data[(Ellipsis, *src)]
    return out
