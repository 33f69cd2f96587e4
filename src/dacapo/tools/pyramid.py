"""Image pyramids: add levels ``s1, s2, ...`` to an OME-NGFF image, blockwise on daisy.

Level ``k + 1`` is computed from level ``k`` by `dacapo.ops.downsample` (mean for
intensities and predictions, mode for label images by default) with the anisotropy-aware
factors of `dacapo.ops.downsample.pyramid_factors` (2 on the finest axes only). Its ROI is
level ``k``'s ROI snapped inward to the new voxel grid (offset and shape multiples of the
new voxel size, so every coarse voxel summarises whole fine voxels and the runner's
alignment rules hold). Each level is a `dacapo.blockwise.run_blockwise` job with its own
done-markers: a killed ``dacapo downsample`` re-run skips finished blocks of the level it
was writing. A level is listed in the multiscales metadata once it is complete.

Levels are derived data (`dacapo.io.rewrite`): a level records the id of the level it was
computed from, and is reused (a resume) only while that level still has this id; else it
and every level after it are removed and computed again. Writing ``s0`` anew removes the
levels after it at once, so the metadata never lists a level of an older ``s0``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from dacapo.blockwise import BlockwiseOptions, run_blockwise
from dacapo.io.ome_read import OUTPUT_ID, new_output_id, output_id
from dacapo.io.ome_write import (
    DEFAULT_UNIT,
    funlib_attrs,
    is_label,
    level_paths,
    multiscale_attrs,
    open_ds,
)
from dacapo.io.paths import check_output
from dacapo.io.rewrite import SOURCE_ID, remove_levels_after
from dacapo.ops.downsample import downsample, pyramid_factors

logger = logging.getLogger(__name__)

#: by default levels are added until the largest spatial axis has at most this many voxels
MIN_EDGE = 64


def _snap_inward(roi: Roi, voxel_size: Coordinate) -> Roi:
    begin = Coordinate(-(-b // v) * v for b, v in zip(roi.begin, voxel_size))
    end = Coordinate((e // v) * v for e, v in zip(roi.end, voxel_size))
    return Roi(begin, end - begin)


def plan_levels(roi: Roi, voxel_size: Coordinate, levels: int | None = None,
                min_edge: int = MIN_EDGE) -> list[tuple[Coordinate, Coordinate, Roi]]:
    """[(factors, voxel size, ROI)] of the levels after one of ``roi``/``voxel_size``:
    ``levels`` of them, or (None) until the largest axis has at most ``min_edge`` voxels;
    stops early where a level would have an axis shorter than one voxel."""
    plan = []
    voxel_size = Coordinate(voxel_size)
    while levels is None or len(plan) < levels:
        shape = roi.shape / voxel_size
        if levels is None and max(shape) <= min_edge:
            break
        factors = Coordinate(pyramid_factors(voxel_size))
        new_vs = voxel_size * factors
        new_roi = _snap_inward(roi, new_vs)
        if any(s < v for s, v in zip(new_roi.shape, new_vs)):
            break
        plan.append((factors, new_vs, new_roi))
        roi, voxel_size = new_roi, new_vs
    return plan


def _spatial_axes(meta: dict) -> tuple[list[str], list[str], bool]:
    axes = meta["axes"]
    names = [a["name"] for a in axes if a.get("type", "space") == "space"]
    units = [a.get("unit") or DEFAULT_UNIT for a in axes if a.get("type", "space") == "space"]
    return names, units, any(a.get("type") == "channel" for a in axes)


def create_level(path: str | Path, name: str, source: str, voxel_size: Sequence[int],
                 roi: Roi, dtype: Any, chunks: Sequence[int] | None = None) -> Array:
    """Create (or reopen, for a resumed job) the array of pyramid level ``name`` of the
    image at ``path``: ``roi`` (world units, aligned to ``voxel_size``), the channels and
    chunk shape of level ``source`` (or ``chunks``, spatial), ``dtype``. An existing level
    is reopened only if it has this geometry and was computed from ``source`` as it is now
    (`SOURCE_ID`); else it and the levels after ``source`` are removed and it is created
    with a new id. The level is not listed in the multiscales metadata until `list_level`
    (after it has been written)."""

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
    attrs = funlib_attrs(names, units, channels, voxel_size, roi.offset)
    source_id = output_id(src)
    existing = group.get(name)
    if not (existing is not None and isinstance(existing, zarr.Array)
            and tuple(existing.shape) == shape and existing.dtype == dtype
            and existing.attrs.get(SOURCE_ID) == source_id
            and {k: v for k, v in existing.attrs.items() if k not in (OUTPUT_ID, SOURCE_ID)}
            == attrs):
        remove_levels_after(path, source)  # computed from another content of the source
        group = zarr.open_group(str(path), mode="r+")
        group.create_array(name, shape=shape, chunks=chunk_shape, dtype=dtype, fill_value=0,
                           dimension_names=(["c"] if channels else []) + names,
                           attributes={**attrs, OUTPUT_ID: new_output_id(),
                                       SOURCE_ID: source_id}, overwrite=True)
    return open_ds(path / name, mode="r+")


def list_level(path: str | Path, name: str) -> None:
    """List level ``name`` (an array of the group at ``path`` made by `create_level`) in
    the multiscales metadata, with scale = its voxel size and translation = its offset: a
    level already listed is updated in place, a new one appended; the list stays ordered
    from the finest level to the coarsest (OME-NGFF requires it; a re-run of
    `downsample_image` re-lists every level)."""

    path = Path(path)
    group = zarr.open_group(str(path), mode="r+")
    ome = dict(group.attrs)["ome"]
    meta = ome["multiscales"][0]
    names, units, channels = _spatial_axes(meta)
    paths = [str(d["path"]) for d in meta["datasets"]]
    levels = []
    for i, p in enumerate(paths):
        arr = open_ds(path / name) if p == name else open_ds(path, level=i)
        levels.append((p, arr.voxel_size, arr.roi.offset))
    if name not in paths:
        new = open_ds(path / name)
        levels.append((name, new.voxel_size, new.roi.offset))
    levels.sort(key=lambda level: tuple(level[1]))
    attrs = multiscale_attrs(names, units, channels, levels, "image-label" in ome,
                              meta.get("name"))
    group.attrs.update({"ome": attrs})


def _downsample_block(method: str, factors: tuple[int, ...], source: np.ndarray, block) -> np.ndarray:
    return downsample(source, factors, method)


def downsample_image(path: str | Path, levels: int | None = None, method: str | None = None,
                     num_workers: int = 1, log_dir: str | Path | None = None,
                     progress: bool = False, min_edge: int = MIN_EDGE) -> list[str]:
    """Add pyramid levels to the OME-NGFF image at ``path`` (see the module docstring);
    returns every level path afterwards. ``method``: ``mean``, ``mode`` or ``stride``
    (default: ``mode`` for a label image or an integer image flagged as one, else ``mean``).
    An existing level computed from its source's current content is completed (its done
    blocks skipped), any other one computed again (module docstring)."""
    path = Path(path)
    try:
        existing = level_paths(path)
    except (ValueError, FileNotFoundError) as e:
        raise ValueError(f"downsample: {e} (write it with dacapo >= this version, or "
                         "`dacapo convert` it)") from e
    if method is None:
        method = "mode" if is_label(path) else "mean"
    if method not in ("mean", "mode", "stride"):
        raise ValueError(f"downsample: method must be mean, mode or stride, got {method!r}")
    base = open_ds(path, level=0)
    plan = plan_levels(base.roi, base.voxel_size, levels, min_edge)
    if not plan:
        logger.info("%s: already small enough, no levels added", path)
    else:  # before zarr's concurrent writes, whose failures would only be logged
        check_output(path, name="downsample")
        for i in range(1, len(plan) + 1):
            if (path / f"s{i}").is_dir():
                check_output(path / f"s{i}", name="downsample")
    names = [existing[0]]
    previous = existing[0]
    for i, (factors, voxel_size, roi) in enumerate(plan, start=1):
        name = f"s{i}"
        out = create_level(path, name, previous, voxel_size, roi, base.dtype)
        block = Coordinate(out._source_data.chunks[out.channel_dims :]) * voxel_size
        logger.info("%s: level %s, factors %s, voxel size %s, ROI %s", path, name,
                    tuple(factors), tuple(voxel_size), roi)
        run_blockwise(
            partial(_downsample_block, method, tuple(factors)),
            inputs={"source": str(path / previous)},
            output=str(path / name),
            block_size=block,
            options=BlockwiseOptions(num_workers=num_workers, progress=progress,
                                     log_dir=None if log_dir is None else Path(log_dir) / name,
                                     task_id=f"downsample_{name}"),
        )
        list_level(path, name)
        names.append(name)
        previous = name
    return level_paths(path)
