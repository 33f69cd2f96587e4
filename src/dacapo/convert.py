"""TIFF stacks (one multi-page file, or a folder of 2D TIFFs sorted by name) to zarr
arrays with voxel size, offset, axis names and units; slab by slab, so the stack need not
fit in memory."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import tifffile
from funlib.geometry import Coordinate
from funlib.persistence import open_ds, prepare_ds


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


def convert_tiff(source, output, voxel_size, offset=None, axis_names=None, units="nm",
                 chunk: int = 64):
    """Write a TIFF stack (one file, or a folder of 2D TIFFs sorted by name) as a zarr
    array with the given voxel size; slab by slab, so the stack need not fit in memory.

    The array is written under a temporary name beside ``output`` and renamed when
    complete: a killed conversion leaves no half-written ``output``."""
    src = Path(source)
    if not src.exists():
        raise FileNotFoundError(f"TIFF source: no file or folder at {str(source)!r}")
    if Path(str(output)).exists():
        raise ValueError(f"output {str(output)!r} exists already; choose another path")
    try:
        shape, dtype, read = _tiff_reader(src)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, IndexError) as e:  # tifffile's errors on a non-TIFF file
        raise ValueError(f"TIFF source {str(source)!r}: cannot read it ({e})") from e
    dims = len(voxel_size)
    if len(shape) != dims:
        raise ValueError(
            f"TIFF {str(source)!r} has shape {shape} ({len(shape)} dims) but --voxel-size "
            f"gives {dims} values"
        )
    names = axis_names or ["z", "y", "x"][-dims:]
    if len(names) != dims:
        raise ValueError(f"--axis-names: expected {dims} names, got {names}")
    final = Path(str(output))
    tmp = final.with_name(f".{final.name}.converting")
    if tmp.exists():  # left by a killed conversion
        shutil.rmtree(tmp)
    arr = prepare_ds(
        str(tmp), shape=shape, offset=Coordinate(offset or (0,) * dims),
        voxel_size=Coordinate(voxel_size), axis_names=names, units=[units] * dims,
        dtype=dtype, chunk_shape=tuple(min(chunk, s) for s in shape), mode="w",
    )
    step = shape[0] if dims == 2 else max(1, chunk)
    for z0 in range(0, shape[0], step):
        z1 = min(shape[0], z0 + step)
        arr._source_data[z0:z1] = read(z0, z1)
    os.replace(tmp, final)
    return open_ds(str(final), mode="r")
