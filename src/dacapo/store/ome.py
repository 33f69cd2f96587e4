"""OME-NGFF 0.5 images in zarr v3: the layout of every array the pipeline writes.

An output at ``<container>.zarr/<name>`` is a zarr v3 *group* whose ``ome`` attributes hold
one ``multiscales`` entry (built and validated with `ome_zarr_models.v05`):

- ``axes``: ``c`` (type ``channel``) where the array has channels, then the spatial axes
  (the input's names, ``z y x`` / ``y x`` when the input has none or funlib's ``d0, d1``),
  type ``space``, unit the input's (as an OME unit name, e.g. ``nm`` -> ``nanometer``) or
  ``nanometer``;
- ``datasets``: level ``s0`` (the data, a zarr array whose ``dimension_names`` are the axis
  names) with ``coordinateTransformations`` scale = voxel size and translation = offset
  (1 and 0 on the channel axis); pyramid levels ``s1, s2, ...`` follow (`create_level`, `list_level`);
  every level array also carries funlib attributes (``voxel_size``, ``offset``, ...);
- label images (segmentations, ground truth) carry ``image-label`` metadata too.

Layout convention: a single-channel output has no channel axis (``(z, y, x)``), a
multi-channel one a leading ``c`` axis.

`prepare_output` creates (or, for a resumed job, reopens) such an image and returns level
``s0`` as a funlib `Array`; `open_ds` opens a plain zarr array (funlib attributes) or a
level of an OME-NGFF 0.4/0.5 multiscale group, read-only unless asked otherwise.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

logger = logging.getLogger(__name__)

__all__ = [
    "create_level",
    "list_level",
    "is_label",
    "level_paths",
    "ome_level",
    "ome_unit",
    "open_ds",
    "prepare_output",
    "spatial_axis_names",
]

#: OME-NGFF unit names for common abbreviations (the spec takes UDUNITS-2 names)
_UNITS = {
    "nm": "nanometer",
    "um": "micrometer",
    "µm": "micrometer",
    "μm": "micrometer",
    "micron": "micrometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
    "pm": "picometer",
    "a": "angstrom",
    "å": "angstrom",
}
DEFAULT_UNIT = "nanometer"
_DEFAULT_NAME = re.compile(r"^d\d+$")


def ome_unit(unit: str | None) -> str:
    """The OME-NGFF name of ``unit`` (``nm`` -> ``nanometer``; empty -> ``nanometer``)."""
    if not unit:
        return DEFAULT_UNIT
    return _UNITS.get(unit.strip().lower(), unit.strip())


def spatial_axis_names(axis_names: Sequence[str] | None, dims: int) -> list[str]:
    """The spatial axis names for an output of ``dims`` spatial dims: the last ``dims``
    non-channel names of ``axis_names`` (channel names end with ``^``), or ``z y x`` /
    ``y x`` when none are given or they are funlib's defaults ``d0, d1, ...``."""
    default = ["z", "y", "x"][-dims:] if dims <= 3 else [f"d{i}" for i in range(dims)]
    if not axis_names:
        return default
    names = [n for n in axis_names if not n.endswith("^")][-dims:]
    if len(names) != dims or all(_DEFAULT_NAME.match(n) for n in names):
        return default
    if len(set(names)) != dims or "c" in names:
        raise ValueError(f"axis names {list(axis_names)}: spatial names must be distinct and not 'c'")
    return names


def _check_geometry(total_roi: Roi, voxel_size: Coordinate, write_size: Coordinate) -> None:
    zero = Coordinate((0,) * len(voxel_size))
    for name, value in (
        ("total_roi offset", total_roi.offset),
        ("total_roi shape", total_roi.shape),
        ("write_size", write_size),
    ):
        if len(value) != len(voxel_size) or value % voxel_size != zero:
            raise ValueError(f"{name} {value} is not a multiple of the voxel size {voxel_size}")


def _multiscale_attrs(names: list[str], units: list[str], channels: bool,
                      levels: list[tuple[str, Sequence[float], Sequence[float]]],
                      label: bool, name: str | None) -> dict:
    """The ``ome`` attributes (validated by ome-zarr-models) of an image with ``levels``
    = [(path, spatial scale, spatial translation), ...]."""
    from ome_zarr_models.v05.axes import Axis
    from ome_zarr_models.v05.image import ImageAttrs
    from ome_zarr_models.v05.image_label import ImageLabelAttrs
    from ome_zarr_models.v05.image_label_types import Label
    from ome_zarr_models.v05.multiscales import Dataset, Multiscale

    axes = [Axis(name="c", type="channel")] if channels else []
    axes += [Axis(name=n, type="space", unit=u) for n, u in zip(names, units)]
    lead_s, lead_t = ([1.0], [0.0]) if channels else ([], [])
    datasets = tuple(
        Dataset.build(path=p, scale=lead_s + [float(v) for v in s],
                      translation=lead_t + [float(v) for v in t])
        for p, s, t in levels
    )
    multiscale = Multiscale(axes=tuple(axes), datasets=datasets, name=name or None)
    if label:
        attrs = ImageLabelAttrs(multiscales=[multiscale], version="0.5",
                                **{"image-label": Label(version="0.5")})
    else:
        attrs = ImageAttrs(multiscales=[multiscale], version="0.5")
    return attrs.model_dump(by_alias=True, exclude_none=True, mode="json")


def _container_and_sub(path: Path) -> tuple[Path, str]:
    """(outermost ``*.zarr`` folder of ``path``, the rest) — ``(path, "")`` if none."""
    parts = path.parts
    for i, part in enumerate(parts):
        if part.endswith((".zarr", ".zarr3")):
            return Path(*parts[: i + 1]), "/".join(parts[i + 1 :])
    return path, ""


def _open_parent_groups(path: Path):
    """The zarr group at ``path``'s container (created if missing), so that a new image
    sits in a proper hierarchy (``out.zarr`` itself is a group readers can list)."""
    import zarr

    container, sub = _container_and_sub(path)
    root = zarr.open_group(str(container), mode="a", zarr_format=3)
    if not sub:
        return root, None
    parent, _, leaf = sub.rpartition("/")
    group = root.require_group(parent) if parent else root
    return group, leaf


def prepare_output(
    path: str | Path,
    total_roi: Roi,
    voxel_size: Coordinate,
    dtype: Any,
    num_channels: int | None = None,
    write_size: Coordinate | None = None,
    axis_names: list[str] | None = None,
    units: list[str] | None = None,
    label: bool = False,
) -> Array:
    """Create (or reopen) the OME-NGFF 0.5 image at ``path`` and return its level ``s0``.

    Same contract as `dacapo.blockwise.prepare_output`: ``write_size`` (world units,
    default the whole ROI) becomes the chunk size (clipped to the ROI) so that parallel
    blocks never share a chunk; an existing image is reused (finished blocks survive a
    re-run) when shape, dtype, voxel size and ROI match, else a `ValueError` names what
    differs. ``num_channels=None`` or ``1`` writes no channel axis (the layout convention:
    a single-channel output is ``(z, y, x)``). ``axis_names``/``units`` are the input's
    (spatial names carry over; see `spatial_axis_names`, `ome_unit`). ``label=True`` flags
    the image as an OME-NGFF label image (``image-label``).
    """
    import zarr

    path = Path(path)
    total_roi = Roi(total_roi.offset, total_roi.shape)
    voxel_size = Coordinate(voxel_size)
    dims = voxel_size.dims
    write_size = Coordinate(total_roi.shape if write_size is None else write_size)
    _check_geometry(total_roi, voxel_size, write_size)
    channels = None if num_channels is None or int(num_channels) == 1 else int(num_channels)
    spatial_shape = tuple(total_roi.shape / voxel_size)
    chunk_spatial = tuple(min(c, s) for c, s in zip(write_size / voxel_size, spatial_shape))
    lead = () if channels is None else (channels,)
    shape, chunks = lead + spatial_shape, lead + chunk_spatial
    dtype = np.dtype(dtype)
    names = spatial_axis_names(axis_names, dims)
    unit_list = list(units or [])
    unit_list = [ome_unit(u) for u in (unit_list[-dims:] if len(unit_list) >= dims else [""] * dims)]

    existing = _open_existing(path)
    if existing is not None:
        problems = []
        if tuple(existing.shape) != shape:
            problems.append(f"shape {tuple(existing.shape)} != {shape}")
        if existing.dtype != dtype:
            problems.append(f"dtype {existing.dtype} != {dtype}")
        if existing.voxel_size != voxel_size:
            problems.append(f"voxel size {existing.voxel_size} != {voxel_size}")
        if existing.roi != total_roi:
            problems.append(f"ROI {existing.roi} != {total_roi}")
        if problems:
            raise ValueError(
                f"existing array at {path} is incompatible with the requested output: "
                + "; ".join(problems)
                + ". Delete it or choose another output path."
            )
        logger.info("reusing existing output image %s", path)
        return open_ds(path, mode="r+")

    parent, leaf = _open_parent_groups(path)
    attrs = _multiscale_attrs(names, unit_list, channels is not None,
                              [("s0", voxel_size, total_roi.offset)], label, None)
    if leaf is None:  # the container itself is the image
        group = parent
        group.attrs.update({"ome": attrs})
    else:
        group = parent.create_group(leaf, overwrite=True, attributes={"ome": attrs})
    group.create_array(
        "s0", shape=shape, chunks=chunks, dtype=dtype, fill_value=0,
        dimension_names=(["c"] if channels is not None else []) + names, overwrite=True,
        attributes=_funlib_attrs(names, unit_list, channels is not None, voxel_size,
                                 total_roi.offset),
    )
    del zarr
    return open_ds(path, mode="r+")


def _open_existing(path: Path) -> Array | None:
    """The existing output at ``path`` (level 0), None if there is none or only a group
    left by a run killed before it created ``s0``; a plain zarr array (an output of an
    older version) opens as it is."""
    if not path.exists():
        return None
    try:
        return open_ds(path, mode="r")
    except (FileNotFoundError, KeyError):
        return None
    except ValueError as e:
        if "lists no datasets" in str(e) or "no array" in str(e) or "not an array" in str(e):
            return None
        raise


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
    import zarr

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
    import zarr

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
    import zarr
    from funlib.persistence import open_ds as funlib_open_ds

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


def _funlib_attrs(names: list[str], units: list[str], channels: bool, voxel_size,
                  offset) -> dict:
    """funlib.persistence attributes of a level array, so that tools that open
    ``image/sN`` directly (funlib, daisy, gunpowder) see its voxel size and offset too."""
    return {
        "voxel_size": [int(v) for v in voxel_size],
        "offset": [int(v) for v in offset],
        "axis_names": (["c^"] if channels else []) + list(names),
        "units": list(units),
    }


def _spatial_axes(meta: dict) -> tuple[list[str], list[str], bool]:
    axes = meta["axes"]
    names = [a["name"] for a in axes if a.get("type", "space") == "space"]
    units = [a.get("unit") or DEFAULT_UNIT for a in axes if a.get("type", "space") == "space"]
    return names, units, any(a.get("type") == "channel" for a in axes)


def create_level(path: str | Path, name: str, source: str, voxel_size: Sequence[int],
                 roi: Roi, dtype: Any, chunks: Sequence[int] | None = None) -> Array:
    """Create (or reopen, for a resumed job) the array of pyramid level ``name`` of the
    image at ``path``: ``roi`` (world units, aligned to ``voxel_size``), the channels and
    chunk shape of level ``source`` (or ``chunks``, spatial), ``dtype``. The level is not
    listed in the multiscales metadata until `list_level` (after it has been written)."""
    import zarr

    path = Path(path)
    group = zarr.open_group(str(path), mode="r+")
    meta = dict(group.attrs)["ome"]["multiscales"][0]
    names, units, channels = _spatial_axes(meta)
    src = open_ds(path, level=source)
    voxel_size = Coordinate(voxel_size)
    dims = voxel_size.dims
    lead = tuple(src.shape[: len(src.shape) - dims])
    shape = lead + tuple(roi.shape / voxel_size)
    spatial_chunks = tuple(chunks) if chunks is not None else tuple(src._source_data.chunks)[len(lead):]
    chunk_shape = lead + tuple(min(c, s) for c, s in zip(spatial_chunks, shape[len(lead):]))
    dtype = np.dtype(dtype)
    attrs = _funlib_attrs(names, units, channels, voxel_size, roi.offset)
    existing = group.get(name)
    if not (existing is not None and isinstance(existing, zarr.Array)
            and tuple(existing.shape) == shape and existing.dtype == dtype
            and dict(existing.attrs) == attrs):
        group.create_array(name, shape=shape, chunks=chunk_shape, dtype=dtype, fill_value=0,
                           dimension_names=(["c"] if channels else []) + names,
                           attributes=attrs, overwrite=True)
    return open_ds(path / name, mode="r+")


def list_level(path: str | Path, name: str) -> None:
    """Append level ``name`` (an array of the group at ``path`` made by `create_level`) to
    the multiscales metadata, with scale = its voxel size and translation = its offset."""
    import zarr

    path = Path(path)
    group = zarr.open_group(str(path), mode="r+")
    ome = dict(group.attrs)["ome"]
    meta = ome["multiscales"][0]
    names, units, channels = _spatial_axes(meta)
    paths = [str(d["path"]) for d in meta["datasets"]]
    levels = []
    for i, p in enumerate(paths):
        if p == name:
            continue
        arr = open_ds(path, level=i)
        levels.append((p, arr.voxel_size, arr.roi.offset))
    new = open_ds(path / name)
    levels.append((name, new.voxel_size, new.roi.offset))
    attrs = _multiscale_attrs(names, units, channels, levels, "image-label" in ome,
                              meta.get("name"))
    group.attrs.update({"ome": attrs})
