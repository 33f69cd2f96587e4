"""Image pyramids: add levels ``s1, s2, ...`` to an OME-NGFF image, blockwise on daisy.

Level ``k + 1`` is computed from level ``k`` by `dacapo.ops.downsample` (mean for
intensities and predictions, mode for label images by default) with the anisotropy-aware
factors of `dacapo.ops.downsample.pyramid_factors` (2 on the finest axes only). Its ROI is
level ``k``'s ROI snapped inward to the new voxel grid (offset and shape multiples of the
new voxel size, so every coarse voxel summarises whole fine voxels and the runner's
alignment rules hold). Each level is a `dacapo.blockwise.run_blockwise` job with its own
done-markers: a killed ``dacapo downsample`` re-run skips finished blocks of the level it
was writing. A level is listed in the multiscales metadata once it is complete.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import numpy as np
from funlib.geometry import Coordinate, Roi

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


def _downsample_block(method: str, factors: tuple[int, ...], source: np.ndarray, block) -> np.ndarray:
    return downsample(source, factors, method)


def downsample_image(path: str | Path, levels: int | None = None, method: str | None = None,
                     num_workers: int = 1, log_dir: str | Path | None = None,
                     progress: bool = False, min_edge: int = MIN_EDGE) -> list[str]:
    """Add pyramid levels to the OME-NGFF image at ``path`` (see the module docstring);
    returns every level path afterwards. ``method``: ``mean``, ``mode`` or ``stride``
    (default: ``mode`` for a label image or an integer image flagged as one, else ``mean``).
    Existing levels after ``s0`` are recomputed only where their blocks are not done."""
    from dacapo.blockwise import run_blockwise
    from dacapo.store.ome import create_level, is_label, level_paths, list_level, open_ds

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
            num_workers=num_workers,
            log_dir=None if log_dir is None else Path(log_dir) / name,
            task_id=f"downsample_{name}",
            progress=progress,
        )
        list_level(path, name)
        names.append(name)
        previous = name
    return level_paths(path)
