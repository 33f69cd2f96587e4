"""Array I/O: the one `open_array`, zero-padded reads, output creation, atomic writes.

An array path is ``<container>.zarr/<array>`` (e.g. ``data.zarr/raw``), opened with
funlib.persistence (read-only by default): voxel size, offset, axis names and units come
from the array's attributes (``voxel_size``, ``offset``, ``axis_names``, ``units``). A path
that points at an OME-NGFF multiscale group (``multiscales`` in its attributes, v0.4 or
v0.5) opens its level 0 with the scale/translation of that level (`dacapo.io.ome_write`); a
level of such an image opened by its own path (``image/s1``) has funlib attributes too.
Pipeline outputs are OME-NGFF images: `dacapo.io.ome_write.prepare_ome`.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import zarr
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array, open_ds, prepare_ds

from dacapo.io.ome_read import OUTPUT_ID, check_reusable, new_output_id, ome_level
from dacapo.ops.padding import reflect_index

logger = logging.getLogger(__name__)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and `os.replace`:
    a reader (or a re-run after a kill) never sees a half-written file; a failed write (a
    read-only target) removes its temp file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed write leaves nothing behind
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


#: folder suffixes of array containers
CONTAINER_SUFFIXES = (".zarr", ".n5", ".zarr2", ".zarr3")


def container_of(path: str | Path) -> Path | None:
    """The container folder (``*.zarr``, ``*.n5``) holding the array ``path``, if any."""
    path = Path(os.path.abspath(os.fspath(path)))
    for parent in [path, *path.parents]:
        if parent.suffix in CONTAINER_SUFFIXES:
            return parent
    return None


def open_array(array: Array | str | Path, name: str = "array", mode: str = "r") -> Array:
    """An `Array` as is, or a zarr array (or OME-NGFF multiscale level 0) opened with
    ``mode`` (read-only by default).

    Errors: `FileNotFoundError` / `ValueError` with one line naming ``name`` and the path.
    """
    if isinstance(array, Array):
        return array
    path = str(array)
    if not Path(path).exists():
        raise FileNotFoundError(f"{name}: no array at {path!r}")
    try:
        node = zarr.open(path, mode="r")
    except Exception as e:  # noqa: BLE001 - zarr raises many kinds; report them in one line
        raise ValueError(f"{name}: cannot open {path!r} as zarr ({type(e).__name__}: {e})") from e
    overrides: dict = {}
    if isinstance(node, zarr.Group):
        try:
            sub, overrides = ome_level(node, path, 0)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from e
        path = str(Path(path) / sub)
    try:
        opened = open_ds(path, mode=mode, **overrides)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{name}: cannot open {path!r} ({type(e).__name__}: {e})") from e
    if opened.voxel_size.dims not in (2, 3):
        raise ValueError(
            f"{name}: {path!r} has {opened.voxel_size.dims} spatial dims (shape "
            f"{tuple(opened.shape)}); expected 2 or 3"
        )
    return opened


def in_memory(data: np.ndarray):
    """``data`` as a one-chunk dask array with a random name, for a funlib `Array`, holding
    ``data`` itself: built from a numpy array, an `Array` hashes the data for a dask name
    (~4 ms per 4 MB), ``dask.array.from_array`` copies it (15 ms for a 16-channel 1 Mvoxel
    target), and reads would be split into chunks. Don't modify ``data`` afterwards."""
    data = np.asarray(data)
    name = "in-memory-" + uuid.uuid4().hex
    key = (name,) + (0,) * data.ndim
    return da.Array({key: data}, name, tuple((n,) for n in data.shape), dtype=data.dtype,
                    meta=np.empty((0,) * data.ndim, data.dtype))


def memory_data(data) -> np.ndarray | None:
    """The numpy array an `in_memory` dask array holds (None for anything else)."""
    name = getattr(data, "name", None)
    if not (isinstance(name, str) and name.startswith("in-memory-")):
        return None
    held = dict(data.dask).get((name,) + (0,) * data.ndim)
    return held if isinstance(held, np.ndarray) and held.shape == data.shape else None


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


def read_array(array: Array, roi: Roi, fill_value=0) -> np.ndarray:
    """``array``'s data in ``roi`` (``fill_value`` outside the array's ROI, leading channel
    axes kept) as a new numpy array: straight from its zarr/numpy source (`read_padded`, no
    dask graph: several times faster for a block) unless the array has lazy ops."""
    if array.lazy_ops:
        return np.asarray(array.to_ndarray(roi, fill_value=fill_value))
    return read_padded(array._source_data, array.roi, array.voxel_size, roi, fill_value)


#: how context beyond the edge of a volume is filled
PADDINGS = ("reflect", "zero", "none")


def read_reflected(array: Array, roi: Roi) -> np.ndarray:
    """``roi`` of ``array`` (leading channel axes kept) with voxels outside the array's ROI
    mirrored into it (`dacapo.ops.padding.reflect_index`, numpy's ``reflect``): exact for
    any pad width, also when ``roi`` extends beyond the array on both sides."""
    vs = array.voxel_size
    shape = array.roi.shape / vs
    begin = (roi.begin - array.roi.begin) / vs
    maps = [reflect_index(np.arange(b, b + s), n)
            for b, s, n in zip(begin, roi.shape / vs, shape)]
    lo = [int(m.min()) for m in maps]
    hi = [int(m.max()) + 1 for m in maps]
    box = Roi(array.roi.begin + vs * Coordinate(lo),
              vs * Coordinate(h - lo_ for h, lo_ in zip(hi, lo)))
    data = read_array(array, box)
    lead = data.ndim - vs.dims
    index = np.ix_(*[m - lo_ for m, lo_ in zip(maps, lo)])
    return data[(slice(None),) * lead + index]


def read_with_padding(array: Array, roi: Roi, padding: str) -> np.ndarray:
    """``roi`` of ``array``, context outside its ROI mirrored (``"reflect"``) or zero
    (``"zero"``, and ``"none"``, where no read leaves the array)."""
    if padding == "reflect" and not array.roi.contains(roi):
        return read_reflected(array, roi)
    return read_array(array, roi)


def prepare_zarr(
    path: str | Path,
    total_roi: Roi,
    voxel_size: Coordinate,
    dtype: Any,
    num_channels: int | None = None,
    write_size: Coordinate | None = None,
    axis_names: list[str] | None = None,
    units: list[str] | None = None,
):
    """Create (or reopen) the zarr output array for `run_blockwise`.

    ``write_size`` is the block size in world units (default: the whole ROI);
    it becomes the chunk size so that no two blocks share a chunk, which makes
    parallel writes safe. An existing array is reused as-is (mode ``"a"``, so
    finished blocks survive a re-run) if shape, dtype and voxel size match;
    otherwise a `ValueError` is raised. Returns the `funlib.persistence.Array`.
    """
    total_roi = Roi(total_roi.offset, total_roi.shape)
    voxel_size = Coordinate(voxel_size)
    write_size = Coordinate(total_roi.shape if write_size is None else write_size)
    for name, value in (
        ("total_roi offset", total_roi.offset),
        ("total_roi shape", total_roi.shape),
        ("write_size", write_size),
    ):
        if len(value) != len(voxel_size) or value % voxel_size != Coordinate(
            (0,) * len(voxel_size)
        ):
            raise ValueError(f"{name} {value} is not a multiple of the voxel size {voxel_size}")
    spatial_shape = tuple(total_roi.shape / voxel_size)
    chunk_spatial = tuple(min(c, s) for c, s in zip(write_size / voxel_size, spatial_shape))
    channel_shape = () if num_channels is None else (int(num_channels),)
    shape = channel_shape + spatial_shape
    chunk_shape = channel_shape + chunk_spatial
    dtype = np.dtype(dtype)
    if axis_names is not None and num_channels is not None and len(axis_names) == len(voxel_size):
        axis_names = ["c^", *axis_names]

    try:
        existing = open_ds(str(path), mode="r")
    except (FileNotFoundError, KeyError):
        existing = None
    if existing is not None:
        check_reusable(existing, path, shape, dtype, voxel_size, total_roi)
        logger.info("reusing existing output array %s", path)
        return open_ds(str(path), mode="r+")

    created = prepare_ds(
        str(path),
        shape=shape,
        offset=total_roi.offset,
        voxel_size=voxel_size,
        axis_names=axis_names,
        units=units,
        chunk_shape=chunk_shape,
        dtype=dtype,
        mode="a",
    )
    created._source_data.attrs[OUTPUT_ID] = new_output_id()
    return created
