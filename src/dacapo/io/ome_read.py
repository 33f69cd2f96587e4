"""Reading OME-NGFF 0.4/0.5 multiscale images (and plain zarr arrays) as funlib `Array`s.

`open_ds` opens a plain zarr array with funlib attributes as it is, and a multiscale group
as one of its levels with the group's metadata: axis names (channel axes as ``name^``),
spatial units, voxel size = the level's scale (times a global one), offset = its
translation. The writing side is `dacapo.io.ome_write`.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import zarr
from funlib.persistence import Array
from funlib.persistence import open_ds as funlib_open_ds

__all__ = ["is_label", "level_paths", "ome_level", "open_ds"]


def ome_level(group, path: str, level: int | str = 0) -> tuple[str, dict]:
    """(sub-path of ``level``, `funlib.persistence.open_ds` overrides) of an OME-NGFF
    0.4/0.5 multiscale ``group``: axis names (channel axes as ``name^``), spatial units,
    voxel size = the level's scale (times a global one) and offset = its translation."""
    attrs = dict(group.attrs)
    ms = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if not ms:
        arrays = sorted(k for k, _ in group.arrays())
        hint = f" (it holds arrays {arrays[:8]})" if arrays else ""
        raise ValueError(f"{path!r} is a zarr group, not an array{hint}")
    meta = ms[0]
    datasets = meta.get("datasets") or []
    if not datasets:
        raise ValueError(f"{path!r}: OME-NGFF multiscales lists no datasets")
    if isinstance(level, str):
        found = [d for d in datasets if d.get("path") == level]
        if not found:
            raise ValueError(f"{path!r}: no level {level!r} in {[d.get('path') for d in datasets]}")
        entry = found[0]
    else:
        if not 0 <= level < len(datasets):
            raise ValueError(f"{path!r}: level {level} not in 0..{len(datasets) - 1}")
        entry = datasets[level]
    axes = meta.get("axes") or []
    scale = None
    translation = None
    for transforms in (meta.get("coordinateTransformations") or [],
                       entry.get("coordinateTransformations") or []):
        for t in transforms:
            if t.get("type") == "scale":
                scale = [a * b for a, b in zip(scale, t["scale"])] if scale else list(t["scale"])
            elif t.get("type") == "translation":
                translation = (
                    [a + b for a, b in zip(translation, t["translation"])]
                    if translation
                    else list(t["translation"])
                )
    names, units, spatial = [], [], []
    for i, axis in enumerate(axes):
        axis = axis if isinstance(axis, dict) else {"name": axis, "type": "space"}
        is_space = axis.get("type", "space") == "space"
        names.append(axis["name"] if is_space else f"{axis['name']}^")
        if is_space:
            spatial.append(i)
            units.append(axis.get("unit") or "")
    overrides: dict = {}
    if axes:
        overrides["axis_names"] = names
        overrides["units"] = units
    if scale is not None:
        vs = [scale[i] for i in spatial] if axes else scale
        if not all(abs(v - round(v)) < 1e-6 and round(v) > 0 for v in vs):
            raise ValueError(
                f"{path!r}: OME-NGFF scale {vs} is not a positive integer voxel size; "
                "express it in a smaller unit (e.g. nm)"
            )
        overrides["voxel_size"] = [int(round(v)) for v in vs]
    if translation is not None:
        off = [translation[i] for i in spatial] if axes else translation
        overrides["offset"] = [int(round(v)) for v in off]
    return str(entry["path"]), overrides


def _ome_meta(path: str | Path) -> dict | None:
    """The first ``multiscales`` entry of the group at ``path`` (None: not OME-NGFF)."""

    node = zarr.open(str(path), mode="r")
    if not isinstance(node, zarr.Group):
        return None
    attrs = dict(node.attrs)
    ms = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    return ms[0] if ms else None


def level_paths(path: str | Path) -> list[str]:
    """The level paths (``s0``, ``s1``, ...) of the OME-NGFF image at ``path``."""
    meta = _ome_meta(path)
    if meta is None:
        raise ValueError(f"{str(path)!r} is not an OME-NGFF multiscale image")
    return [str(d["path"]) for d in meta.get("datasets") or []]


def is_label(path: str | Path) -> bool:
    """True if ``path`` is an OME-NGFF label image (``image-label`` metadata)."""

    try:
        node = zarr.open(str(path), mode="r")
    except Exception:  # noqa: BLE001 - not a zarr node: not a label image
        return False
    if not isinstance(node, zarr.Group):
        return False
    attrs = dict(node.attrs)
    return "image-label" in attrs or "image-label" in attrs.get("ome", {})


def open_ds(path: str | Path, mode: str = "r", level: int | str = 0) -> Array:
    """A zarr array as a funlib `Array`: a plain array with funlib attributes as it is, an
    OME-NGFF multiscale group as its ``level`` (default 0) with the group's metadata."""

    path = str(path)
    if not Path(path).exists():
        raise FileNotFoundError(f"no array at {path!r}")
    node = zarr.open(path, mode="r")
    if isinstance(node, zarr.Group):
        sub, overrides = ome_level(node, path, level)
        array_path = str(Path(path) / sub)
        if not Path(array_path).exists():
            raise ValueError(f"{path!r}: level {sub!r} listed in multiscales is no array")
        return funlib_open_ds(array_path, mode=mode, **overrides)
    parent = Path(path).parent
    if (parent / "zarr.json").exists() or (parent / ".zattrs").exists():
        # a level of a multiscale image opened by its own path (``image.zarr/s1``)
        group = zarr.open(str(parent), mode="r")
        if isinstance(group, zarr.Group) and Path(path).name in _listed_levels(group):
            _, overrides = ome_level(group, str(parent), Path(path).name)
            return funlib_open_ds(path, mode=mode, **overrides)
    return funlib_open_ds(path, mode=mode)


def _listed_levels(group) -> list[str]:
    attrs = dict(group.attrs)
    ms = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    return [str(d.get("path")) for d in (ms[0].get("datasets") or [])] if ms else []


#: attribute of every array `prepare_zarr` or `prepare_ome` creates: a new id per created array, so that
#: done-markers of a blockwise job are never taken for blocks of a re-created output
OUTPUT_ID = "dacapo_output_id"


def new_output_id() -> str:
    return uuid.uuid4().hex


def output_id(array: Array) -> str | None:
    """The `OUTPUT_ID` of an opened array (None for arrays made elsewhere)."""
    attrs = getattr(getattr(array, "_source_data", None), "attrs", None)
    return None if attrs is None else attrs.get(OUTPUT_ID)


def check_reusable(existing: Array, path, shape: tuple, dtype, voxel_size, roi) -> None:
    """ValueError unless an existing output (reused by a re-run, so that finished blocks
    survive) has the requested shape, dtype, voxel size and ROI."""
    problems = []
    if tuple(existing.shape) != shape:
        problems.append(f"shape {tuple(existing.shape)} != {shape}")
    if existing.dtype != dtype:
        problems.append(f"dtype {existing.dtype} != {dtype}")
    if existing.voxel_size != voxel_size:
        problems.append(f"voxel size {existing.voxel_size} != {voxel_size}")
    if existing.roi != roi:
        problems.append(f"ROI {existing.roi} != {roi}")
    if problems:
        raise ValueError(
            f"existing array at {path} is incompatible with the requested output: "
            + "; ".join(problems) + ". Delete it or choose another output path."
        )
