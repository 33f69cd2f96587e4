"""``dacapo convert``: a TIFF stack (or a zarr array) into an OME-NGFF 0.5 image.

Optionally cropped (``roi`` in world units, or voxel ``slices`` like ``0:10,:,:``) and with
label values remapped (``mapping`` {old: new}, e.g. a 0/255 mask into class ids 0/1; values
not in the mapping are kept). Written slab by slab along the first spatial axis, so the
stack need not fit in memory, under a temporary name beside the output and renamed when
complete: a killed conversion leaves no half-written output.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import fastremap
import numpy as np
import tifffile
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from dacapo.io.array_checks import check_voxel_size
from dacapo.io.ome_read import open_ds
from dacapo.io.ome_write import prepare_ome

__all__ = ["convert_tiff", "parse_map", "parse_roi", "parse_slices"]


def _tiff_reader(src: Path):
    """(shape, dtype, read(z0, z1)) of a TIFF file or a folder of 2D TIFFs."""
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.suffix.lower() in (".tif", ".tiff"))
        if not files:
            raise FileNotFoundError(f"TIFF source: no .tif/.tiff files in {str(src)!r}")
        first = tifffile.imread(files[0])
        shape, dtype = (len(files), *first.shape), first.dtype

        def read(z0: int, z1: int) -> np.ndarray:
            return np.stack([tifffile.imread(f) for f in files[z0:z1]])

        return shape, dtype, read
    series = tifffile.TiffFile(src).series[0]
    shape, dtype = tuple(series.shape), series.dtype
    pages = series.pages if len(shape) == 3 and len(series.pages) == shape[0] else None

    def read(z0: int, z1: int) -> np.ndarray:
        if pages is None:  # one page holds everything
            return series.asarray()[z0:z1]
        return np.stack([pages[i].asarray() for i in range(z0, z1)])

    return shape, dtype, read


def _is_zarr(src: Path) -> bool:
    return src.is_dir() and any((src / f).exists() for f in ("zarr.json", ".zarray", ".zgroup"))


def parse_slices(text: str, shape: Sequence[int]) -> tuple[slice, ...]:
    """``"0:10,:,5:"`` as one slice per axis of ``shape`` (Python semantics, no step)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != len(shape):
        raise ValueError(f"--slices {text!r}: expected {len(shape)} comma-separated ranges")
    out = []
    for part, size in zip(parts, shape):
        bits = part.split(":")
        try:
            if len(bits) == 1 and bits[0]:
                i = int(bits[0])
                start, stop = (i, i + 1) if i >= 0 else (size + i, size + i + 1)
            elif len(bits) == 2:
                start, stop, _ = slice(*(int(b) if b else None for b in bits)).indices(size)
            else:
                raise ValueError
        except ValueError as e:
            raise ValueError(f"--slices {text!r}: {part!r} is not a range like 0:10 or :") from e
        if not 0 <= start < stop <= size:
            raise ValueError(f"--slices {text!r}: {part!r} selects nothing of an axis of {size}")
        out.append(slice(start, stop))
    return tuple(out)


def parse_roi(text: str, dims: int) -> Roi:
    """``"z0:z1,y0:y1,x0:x1"`` (world units, begin:end) as a `Roi`."""
    parts = [p.strip() for p in text.split(",")]
    try:
        pairs = [tuple(int(v) for v in p.split(":")) for p in parts]
    except ValueError as e:
        raise ValueError(f"--roi {text!r}: expected begin:end integers per axis") from e
    if len(pairs) != dims or any(len(p) != 2 or p[1] <= p[0] for p in pairs):
        raise ValueError(f"--roi {text!r}: expected {dims} ranges begin:end with end > begin")
    begin = Coordinate(p[0] for p in pairs)
    return Roi(begin, Coordinate(p[1] for p in pairs) - begin)


def parse_map(items: Sequence[str]) -> dict[int, int]:
    """``["255:1", "128:2"]`` as ``{255: 1, 128: 2}``."""
    mapping: dict[int, int] = {}
    for item in items:
        try:
            old, new = (int(v) for v in item.split(":"))
        except ValueError as e:
            raise ValueError(f"--map {item!r}: expected OLD:NEW integers, e.g. 255:1") from e
        if old in mapping and mapping[old] != new:
            raise ValueError(f"--map: value {old} is mapped twice ({mapping[old]} and {new})")
        mapping[old] = new
    return mapping


def _remap(data: np.ndarray, mapping: dict[int, int], dtype: np.dtype) -> np.ndarray:
    out = fastremap.remap(data, mapping, preserve_missing_labels=True, in_place=False)
    return out.astype(dtype, copy=False)


def _map_dtype(dtype: np.dtype, mapping: dict[int, int]) -> np.dtype:
    """``dtype`` if every new value fits, else the smallest integer type that holds both."""
    if not mapping:
        return dtype
    if not np.issubdtype(dtype, np.integer):
        raise ValueError(f"--map: the source has dtype {dtype}; values can be remapped only in "
                         "integer (label) images")
    info = np.iinfo(dtype)
    lo, hi = min(mapping.values()), max(mapping.values())
    if info.min <= lo and hi <= info.max:
        return dtype
    return np.result_type(dtype, np.min_scalar_type(lo), np.min_scalar_type(hi))


class _Source(NamedTuple):
    """A source to convert: its (channels +) spatial shape, dtype, number of leading
    channel axes, spatial dims, voxel size, offset, unit, axis names and slab reader."""

    shape: tuple[int, ...]
    dtype: np.dtype
    lead: int
    dims: int
    voxel_size: Coordinate
    offset: Coordinate
    units: str
    axis_names: list[str]
    read: Callable[[int, int], np.ndarray]


def _open_source(source, voxel_size, offset, axis_names, units) -> _Source:
    """``source`` (a zarr array / OME-NGFF image, a TIFF file or folder) with the voxel size,
    offset, unit and axis names the output gets (given ones checked against a zarr's)."""
    src = Path(source)
    read: Callable[[int, int], np.ndarray]
    if _is_zarr(src):
        array = open_ds(src)
        dims = array.voxel_size.dims
        if voxel_size is not None and Coordinate(voxel_size) != array.voxel_size:
            raise ValueError(f"--voxel-size {tuple(voxel_size)} differs from the source's "
                             f"{tuple(array.voxel_size)}")
        voxel_size = array.voxel_size
        offset = array.roi.offset if offset is None else offset
        shape, dtype, lead = tuple(array.shape), array.dtype, array.channel_dims
        units = units if array.units is None or not any(array.units) else array.units[0]
        axis_names = axis_names or [n for n in array.axis_names if not n.endswith("^")]
        data = array._source_data

        def read(z0: int, z1: int) -> np.ndarray:
            return np.asarray(data[(slice(None),) * lead + (slice(z0, z1),)])
    else:
        if voxel_size is None:
            raise ValueError("--voxel-size is required for a TIFF source")
        try:
            shape, dtype, read = _tiff_reader(src)
        except FileNotFoundError:
            raise
        except (OSError, ValueError, IndexError) as e:  # tifffile's errors on a non-TIFF file
            raise ValueError(f"TIFF source {str(source)!r}: cannot read it ({e})") from e
        dims, lead = len(voxel_size), 0
        if len(shape) != dims:
            raise ValueError(
                f"TIFF {str(source)!r} has shape {shape} ({len(shape)} dims) but --voxel-size "
                f"gives {dims} values"
            )
    voxel_size = Coordinate(voxel_size)
    offset = Coordinate(offset or (0,) * dims)
    names = axis_names or ["z", "y", "x"][-dims:]
    if len(names) != dims:
        raise ValueError(f"--axis-names: expected {dims} names, got {names}")
    return _Source(shape, dtype, lead, dims, voxel_size, offset, units, list(names), read)


def _crop(source: _Source, roi: Roi | None, slices: str | None) -> tuple[slice, ...]:
    """The voxel slices of the spatial axes that ``roi`` (world units) or ``slices`` select."""
    dims, voxel_size, offset = source.dims, source.voxel_size, source.offset
    spatial = source.shape[source.lead:]
    if roi is not None and slices is not None:
        raise ValueError("give --roi or --slices, not both")
    if roi is not None:
        if roi.dims != dims:
            raise ValueError(f"--roi {roi} has {roi.dims} axes, the source {dims}")
        zero = Coordinate((0,) * dims)
        if roi.offset % voxel_size != zero or roi.shape % voxel_size != zero:
            raise ValueError(f"--roi {roi} is not a multiple of the voxel size {tuple(voxel_size)}")
        full = Roi(offset, Coordinate(spatial) * voxel_size)
        if not full.contains(roi):
            raise ValueError(f"--roi {roi} is not inside the source's ROI {full}")
        begin = (roi.offset - offset) / voxel_size
        return tuple(slice(b, b + s) for b, s in zip(begin, roi.shape / voxel_size))
    if slices is not None:
        return parse_slices(slices, spatial)
    return tuple(slice(0, s) for s in spatial)


def convert_tiff(source, output, voxel_size=None, offset=None, axis_names=None, units="nm",
                 chunk: int = 64, roi: Roi | None = None, slices: str | None = None,
                 mapping: dict[int, int] | None = None, label: bool | None = None) -> Array:
    """Write ``source`` (TIFF file, folder of 2D TIFFs sorted by name, or a zarr array /
    OME-NGFF image) as the OME-NGFF image ``output``; returns its level 0 read-only.

    ``voxel_size`` (positive integers) is required for TIFF (a zarr source has its own;
    given, it must agree);
    ``offset`` defaults to 0 (TIFF) or the source's. ``roi`` (world units) or ``slices``
    (voxels) crop; the output keeps world coordinates (its offset is the crop's begin).
    ``mapping`` remaps label values; ``label`` flags the output as a label image (default:
    when ``mapping`` is given).
    """
    if not Path(source).exists():
        raise FileNotFoundError(f"source: no file or folder at {str(source)!r}")
    if Path(str(output)).exists():
        raise ValueError(f"output {str(output)!r} exists already; choose another path")
    if voxel_size is not None:
        check_voxel_size(voxel_size, "--voxel-size")
    src = _open_source(source, voxel_size, offset, axis_names, units)
    dims, lead, voxel_size = src.dims, src.lead, src.voxel_size
    crop = _crop(src, roi, slices)
    out_shape = tuple(s.stop - s.start for s in crop)
    out_offset = src.offset + Coordinate(s.start for s in crop) * voxel_size
    mapping = mapping or {}
    out_dtype = _map_dtype(np.dtype(src.dtype), mapping)
    label = bool(mapping) if label is None else label

    final = Path(str(output))
    tmp = final.with_name(f".{final.name}.converting")
    if tmp.exists():  # left by a killed conversion
        shutil.rmtree(tmp)
    out_roi = Roi(out_offset, Coordinate(out_shape) * voxel_size)
    chunk_world = Coordinate(min(chunk, s) for s in out_shape) * voxel_size
    channels = src.shape[0] if lead else None
    arr = prepare_ome(tmp, out_roi, voxel_size, out_dtype, num_channels=channels,
                      write_size=chunk_world, axis_names=src.axis_names,
                      units=[src.units] * dims, label=label)
    target = arr._source_data
    first = crop[0]
    step = out_shape[0] if dims == 2 else max(1, chunk)
    rest = crop[1:]
    for z0 in range(first.start, first.stop, step):
        z1 = min(first.stop, z0 + step)
        slab = src.read(z0, z1)[(slice(None),) * lead + (slice(None),) + rest]
        if channels == 1:
            slab = slab[0]
        if mapping:
            slab = _remap(slab, mapping, out_dtype)
        lead_idx = (slice(None),) * (target.ndim - dims)
        target[lead_idx + (slice(z0 - first.start, z1 - first.start),)] = slab.astype(out_dtype, copy=False)
    os.replace(tmp, final)
    return open_ds(final)
