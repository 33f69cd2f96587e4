"""A gt given as a zarr group of one binary array per class (CellMap's layout): telling
such a group from an array or an OME-NGFF image, and opening the stack ``(C, *spatial)``
of its class arrays, checked to share one grid (see `dacapo.experiments.datasplits`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import dask.array as da
import numpy as np
import zarr
from funlib.persistence import Array

from dacapo.io.arrays import open_array

#: files that make a folder a zarr array or group (v3, v2)
ZARR_METADATA = ("zarr.json", ".zarray", ".zgroup")


def class_group(path: str) -> list[str] | None:
    """The zarr members (arrays, groups) of a folder that is a zarr group but not an
    OME-NGFF image, or a plain folder inside a container (a group of class arrays); None
    for anything else (an array, an image, no such path, nothing zarr in it)."""
    folder = Path(path)
    if not folder.is_dir() or (folder / ".zarray").exists():
        return None
    if (folder / "zarr.json").exists() or (folder / ".zgroup").exists():
        try:
            node = zarr.open(path, mode="r")
        except Exception:  # noqa: BLE001 - not readable: `open_array` reports it
            return None
        attrs = dict(node.attrs)
        if not isinstance(node, zarr.Group) or attrs.get("multiscales") or (
                attrs.get("ome") or {}).get("multiscales"):
            return None
    members = sorted(c.name for c in folder.iterdir() if c.is_dir() and any(
        (c / m).exists() for m in ZARR_METADATA))
    return members or None


def open_class_arrays(path: str, members: list[str], classes: Sequence[str],
                      prefix: str) -> tuple[Array, dict[str, Array]]:
    """The stack ``(C, *spatial)`` of the arrays of ``classes`` in the group ``path`` (zeros
    for the missing ones, lazily), and the arrays present by class. ValueError (one line
    naming the dataset and the class) for a class array with a channel axis or another
    voxel size, shape or offset than the first one, or none present."""
    arrays = {c: open_array(f"{path}/{c}", f"{prefix}: gt/{c}") for c in classes if c in members}
    if not arrays:
        raise ValueError(f"{prefix}: gt: the group {path!r} holds no array of the classes "
                         f"{list(classes)} (every class unannotated: nothing to learn)")
    (ref_name, ref), *rest = arrays.items()
    for name, a in [(ref_name, ref), *rest]:
        dims = a.voxel_size.dims
        if len(a.shape) != dims:
            raise ValueError(f"{prefix}: gt/{name}: shape {tuple(a.shape)} has a channel "
                             "axis; a class array is one binary mask")
        if a.voxel_size != ref.voxel_size:
            raise ValueError(f"{prefix}: gt/{name}: voxel size {tuple(a.voxel_size)} differs "
                             f"from gt/{ref_name}'s {tuple(ref.voxel_size)} (the class arrays "
                             "of a crop share one grid)")
        if a.roi != ref.roi:
            raise ValueError(f"{prefix}: gt/{name}: shape {tuple(a.shape)} at offset "
                             f"{tuple(a.roi.offset)} differs from gt/{ref_name}'s shape "
                             f"{tuple(ref.shape)} at offset {tuple(ref.roi.offset)} (the class "
                             "arrays of a crop share one grid)")
    dtype = np.result_type(*(a.dtype for a in arrays.values()))
    chunks = ref.data.chunks
    data = da.stack([arrays[c].data.astype(dtype) if c in arrays
                     else da.zeros(ref.shape, dtype=dtype, chunks=chunks) for c in classes])
    spatial = list(ref.axis_names)[-ref.voxel_size.dims:]
    units = list(ref.units) if ref.units else None
    stack = Array(data, offset=ref.offset, voxel_size=ref.voxel_size,
                  axis_names=["c^", *spatial], units=units)
    return stack, arrays
