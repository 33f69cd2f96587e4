"""`PyramidVolume`: a neuroglancer volume served lazily from the levels of an image.

The `neuroglancer` package's Python server asks a `neuroglancer.LocalVolume` for each chunk;
this one reads only that region from zarr, from the coarsest pyramid level (``s0, s1, ...``)
that is at least as fine as the requested downsampling (the rest of the factor: the level's
voxel under the centre of each requested voxel). Nothing is loaded whole (`dacapo.tools.view`
builds the viewer).
"""

from __future__ import annotations

from collections.abc import Sequence

import neuroglancer as ng
import numpy as np
from funlib.persistence import Array
from neuroglancer.chunks import encode_jpeg, encode_npz, encode_raw
from neuroglancer.local_volume import MeshesNotSupportedForVolume

__all__ = ["PyramidVolume"]

_NG_UNITS = {"nanometer": "nm", "micrometer": "um", "millimeter": "mm", "meter": "m",
             "angstrom": "Å", "picometer": "pm", "centimeter": "cm", "": "nm"}


class PyramidVolume(ng.LocalVolume):
    """A LocalVolume over the levels of an image: chunk requests read only their
    region, from the coarsest level at least as fine as the request."""

    def __init__(self, levels: Sequence[Array], volume_type: str, dtype=None):
        base = levels[0]
        self.levels = list(levels)
        self.out_dtype = np.dtype(dtype or base.dtype)
        if self.out_dtype == np.float64:
            self.out_dtype = np.dtype(np.float32)
        dims = base.voxel_size.dims
        lead = base.channel_dims
        names = [n for n in base.axis_names][-(dims + lead):]
        names = (["c^"] * lead) + [n.rstrip("^") for n in names[lead:]]
        units = [_NG_UNITS.get(u, u) for u in (base.units or [""] * dims)]
        space = ng.CoordinateSpace(names=names, units=[""] * lead + units,
                                   scales=[1] * lead + list(base.voxel_size))
        offset = [0] * lead + list(base.roi.offset / base.voxel_size)
        super().__init__(_ShapeOnly(tuple(base.shape), self.out_dtype), dimensions=space,
                         volume_type=volume_type, voxel_offset=offset,
                         downsampling="3d" if dims == 3 else "2d")
        self.lead = lead

    def read(self, start: Sequence[int], end: Sequence[int], factors: Sequence[int]) -> np.ndarray:
        """Data of the downsampled index box [start, end) (voxels of the grid of level 0
        downsampled by ``factors``, channels first), read from the best level."""
        lead = self.lead
        base = self.levels[0]
        f_sp = np.asarray(factors[lead:], dtype=np.int64)
        chosen, f_level = base, np.ones_like(f_sp)
        for level in self.levels[1:]:
            fl = np.asarray(level.voxel_size / base.voxel_size, dtype=np.int64)
            if np.all(fl <= f_sp):
                chosen, f_level = level, fl
        # centres of the requested voxels in level-0 voxel units, mapped into `chosen`
        shift = np.asarray((chosen.roi.offset - base.roi.offset) / base.voxel_size)
        level_shape = np.asarray(chosen.shape[lead:])
        index = []
        for a in range(len(f_sp)):
            centre = (np.arange(start[lead + a], end[lead + a]) + 0.5) * f_sp[a]
            i = np.floor((centre - shift[a]) / f_level[a]).astype(np.int64)
            index.append(np.clip(i, 0, level_shape[a] - 1))
        box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in index)
        channels = tuple(slice(int(s), int(e)) for s, e in zip(start[:lead], end[:lead]))
        region = np.asarray(chosen._source_data[channels + box])
        for a, i in enumerate(index):
            region = np.take(region, i - i.min(), axis=lead + a)
        return region.astype(self.out_dtype, copy=False)

    def get_encoded_subvolume(self, data_format, start, end, scale_key):
        factors = np.array(scale_key.split(","), dtype=np.int64)
        if len(factors) != self.rank or np.any(factors < 1) or np.any(factors[: self.lead] != 1):
            raise ValueError("Invalid downsampling factor.")
        shape = np.ceil(np.asarray(self.shape) / factors).astype(np.int64)
        if np.any(end < start) or np.any(start < 0) or np.any(end > shape):
            raise ValueError("Out of bounds data request.")
        subvol = self.read(start, end, factors)
        if data_format == "jpeg":
            return encode_jpeg(subvol), "image/jpeg"
        if data_format == "npz":
            return encode_npz(subvol), "application/octet-stream"
        if data_format == "raw":
            return encode_raw(subvol), "application/octet-stream"
        raise ValueError("Invalid data format requested.")

    def get_object_mesh(self, object_id):  # meshing would read the whole volume
        raise MeshesNotSupportedForVolume()


class _ShapeOnly:
    """Shape and dtype for LocalVolume's constructor; data is read by `PyramidVolume.read`."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype, self.ndim = shape, dtype, len(shape)

    def __getitem__(self, item):  # pragma: no cover - PyramidVolume never reads through it
        raise RuntimeError("PyramidVolume reads its levels directly")
