"""Opening arrays: funlib `Array`s as they are, zarr paths read-only."""

from __future__ import annotations

from pathlib import Path

from funlib.persistence import Array


def open_array(array: Array | str | Path, name: str, mode: str = "r") -> Array:
    """An `Array` as is, or a zarr array path opened (read-only by default).

    Errors name the array (``name``) and the path.
    """
    if isinstance(array, Array):
        return array
    from funlib.persistence import open_ds

    path = Path(array)
    if not path.exists():
        raise FileNotFoundError(f"{name}: no array at {str(array)!r}")
    try:
        return open_ds(str(array), mode=mode)
    except Exception as e:  # noqa: BLE001 - rephrase any opening error with the array's name
        raise ValueError(f"{name}: cannot open array {str(array)!r}: {e}") from e
