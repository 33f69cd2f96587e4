"""Checks of the paths given to the ``dacapo`` commands, made before any work: one line
naming the path and the problem (a missing run directory, TIFFs where zarr is read)."""

from __future__ import annotations

from pathlib import Path

#: file endings of TIFF images (any case)
TIFF_SUFFIXES = (".tif", ".tiff")
_ZARR_METADATA = ("zarr.json", ".zarray", ".zgroup", ".zattrs")


def is_tiff_file(path: str | Path) -> bool:
    """Whether ``path`` is a file named like a TIFF."""
    path = Path(path)
    return path.is_file() and path.suffix.lower() in TIFF_SUFFIXES


def is_tiff_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder of TIFF files (and not a zarr array or group)."""
    path = Path(path)
    if not path.is_dir() or any((path / m).exists() for m in _ZARR_METADATA):
        return False
    return any(p.suffix.lower() in TIFF_SUFFIXES for p in path.iterdir())


def check_run_dir(path: str | Path) -> None:
    """FileNotFoundError when the run directory ``path`` does not exist, or the error of
    loading its ``run.yaml`` (none in it, an invalid config)."""
    from dacapo.runs.run_dir import RunDir  # lazy: the commands' --help answers at once

    if not Path(path).exists():
        raise FileNotFoundError(f"run directory {str(path)!r} does not exist")
    RunDir(path).load_config()


def check_zarr_input(path: str | Path, option: str) -> None:
    """FileNotFoundError when ``path`` (given with ``option``) does not exist; ValueError
    when it is a TIFF file or a folder of TIFFs: they must be converted to zarr first."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{option}: {str(path)!r} does not exist")
    if is_tiff_file(path):
        raise ValueError(f"{option}: {str(path)!r} is a TIFF, not a zarr array: convert it "
                         f"first (dacapo convert {path} OUT.zarr/raw --voxel-size ...)")
    if is_tiff_folder(path):
        raise ValueError(f"{option}: {str(path)!r} is a folder of TIFFs, not a zarr array: "
                         f"convert it first (dacapo convert {path} OUT.zarr --collection "
                         "--voxel-size ... for separate images, OUT.zarr/raw for one stack)")
