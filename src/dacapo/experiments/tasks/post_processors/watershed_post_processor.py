"""Watershed post-processor: mutex watershed on predicted affinities over a bias sweep.

Only the first ``len(offsets)`` prediction channels are used (LSD channels that follow are
ignored); integer predictions are scaled by the dtype's maximum. Output: uint64 labels, no
channel axis, 0 = background (voxels that merged with nothing and removed fragments). See
`dacapo.ops.watershed` for the edge convention (weight ``aff - bias``, positive attractive,
every channel alike) and the fragment filter (mean affinity >= bias, size >= min_size).

An in-memory `Array` prediction is segmented in one block. A zarr prediction runs blockwise
in three passes, deterministic and independent of the number of workers:

1. fragments: each block is segmented on its write ROI grown by ``context`` (default twice
   the largest offset per axis); the write ROI is written to the output with ids
   ``block_index * ids_per_block + local id`` (unique, uint64). Each block also stores, in a
   scratch directory, its labels of the read ROI minus the interior that no neighbour sees,
   and the size and affinity sum of each written fragment.
2. stitching (driver, two blocks in memory at a time): for every pair of blocks whose read
   ROIs overlap (faces, edges, corners), on the part of one block's write ROI that the other
   saw as context, each id of the other block joins the id that holds the strict majority of
   its voxels there (`dacapo.ops.watershed.majority_pairs`); a union of all pairs gives
   objects (representative: smallest id), whose sizes and mean affinities are the exact sums
   over their fragments, so the fragment filter acts on whole objects as in one block.
3. relabel: each block maps its fragment ids through a per-block lookup table.

Peak memory is bounded by the block size (plus the id tables of the fragments that touch
block boundaries). The scratch directory (next to the output's zarr container, or inside
``log_dir``) is removed at the end; each call recomputes every block.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import product
from pathlib import Path

import numpy as np
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from dacapo.ops.watershed import (
    fragment_statistics,
    keep_fragments,
    majority_pairs,
    merge_components,
    mutex_watershed,
    segment,
)
from dacapo.store.arrays import open_array

from .post_processor import PostProcessor
from .watershed_post_processor_parameters import WatershedPostProcessorParameters

logger = logging.getLogger(__name__)

DEFAULT_BIASES = (0.1, 0.25, 0.5, 0.75, 0.9)


class WatershedPostProcessor(PostProcessor):
    """Mutex watershed of the affinity channels, one segmentation per bias.

    ``offsets``: the affinity neighborhood (one offset per channel, voxels).
    ``biases``: the sweep. ``min_size``: fragments smaller than this are removed.
    ``strides`` / ``randomized_strides`` / ``seed``: edge subsampling of `mutex_watershed`
    (off by default; randomized strides are seeded, per block in blockwise runs).
    ``context``: voxels of context per axis for blockwise runs (default 2 x max |offset|).
    """

    #: default block size in voxels per axis for zarr predictions
    DEFAULT_BLOCK_VOXELS = 64

    def __init__(
        self,
        offsets: Sequence[Sequence[int]],
        biases: Sequence[float] = DEFAULT_BIASES,
        min_size: int = 0,
        strides: Sequence[Sequence[int]] | None = None,
        randomized_strides: bool = False,
        seed: int | None = None,
        context: Sequence[int] | None = None,
    ) -> None:
        self.offsets = [tuple(int(v) for v in o) for o in offsets]
        if not self.offsets or len({len(o) for o in self.offsets}) != 1:
            raise ValueError(f"WatershedPostProcessor: offsets {offsets} must be non-empty "
                             "and all of one dimension")
        self.biases = [float(b) for b in biases]
        if not self.biases or len(set(self.biases)) != len(self.biases):
            raise ValueError(f"WatershedPostProcessor: biases {biases} must be non-empty "
                             "and distinct")
        if min_size < 0:
            raise ValueError(f"WatershedPostProcessor: min_size must be >= 0, got {min_size}")
        if strides is not None and len(strides) != len(self.offsets):
            raise ValueError("WatershedPostProcessor: strides needs one entry per offset")
        self.min_size = int(min_size)
        self.strides = None if strides is None else [tuple(int(v) for v in s) for s in strides]
        self.randomized_strides = bool(randomized_strides)
        self.seed = seed
        dims = len(self.offsets[0])
        if context is None:
            context = [max(1, 2 * max(abs(o[d]) for o in self.offsets)) for d in range(dims)]
        if len(context) != dims:
            raise ValueError(f"WatershedPostProcessor: context {context} needs {dims} values")
        self.context_voxels = Coordinate(int(c) for c in context)

    def enumerate_parameters(self) -> Iterator[WatershedPostProcessorParameters]:
        for i, bias in enumerate(self.biases):
            yield WatershedPostProcessorParameters(id=i, bias=bias, min_size=self.min_size)

    def _watershed_kwargs(self) -> dict:
        return {
            "strides": self.strides,
            "randomized_strides": self.randomized_strides,
            "seed": self.seed,
        }

    def process(
        self,
        parameters: WatershedPostProcessorParameters,
        output_array: str | Path,
        num_workers: int = 1,
        block_size=None,
        log_dir: str | Path | None = None,
    ) -> Array:
        """Segment the prediction for ``parameters`` into ``output_array`` (zarr path)."""
        from dacapo.blockwise import prepare_output

        if self.prediction is None:
            raise ValueError("WatershedPostProcessor: call set_prediction() before process()")
        prediction = open_array(self.prediction, "prediction")
        voxel_size = prediction.voxel_size
        if voxel_size.dims != len(self.offsets[0]):
            raise ValueError(
                f"prediction: {voxel_size.dims} spatial dims, offsets have "
                f"{len(self.offsets[0])}"
            )
        num_channels = prediction.shape[0] if prediction.channel_dims else 1
        if num_channels < len(self.offsets):
            raise ValueError(
                f"prediction: {num_channels} channel(s), need at least one per offset "
                f"({len(self.offsets)})"
            )
        roi = prediction.roi
        if block_size is None:
            block_size = Coordinate((self.DEFAULT_BLOCK_VOXELS,) * voxel_size.dims) * voxel_size
        block_size = Coordinate(min(b, s) for b, s in zip(Coordinate(block_size), roi.shape))
        out = prepare_output(
            output_array, total_roi=roi, voxel_size=voxel_size, dtype=np.uint64,
            write_size=block_size,
        )
        if isinstance(self.prediction, Array):
            affs = _affinities(np.asarray(prediction.to_ndarray(roi)), len(self.offsets),
                               voxel_size.dims)
            out[roi] = segment(affs, self.offsets, parameters.bias, parameters.min_size,
                               **self._watershed_kwargs())
        else:
            self._process_blockwise(parameters, output_array, roi, voxel_size, block_size,
                                    num_workers, log_dir)
        del out
        return open_array(output_array, "output")

    def _process_blockwise(self, parameters, output_array, roi, voxel_size, block_size,
                           num_workers, log_dir) -> None:
        from dacapo.blockwise import run_blockwise

        base = Path(log_dir) if log_dir is not None else _container_parent(Path(output_array))
        base.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"watershed_{parameters.id}_", dir=base))
        scratch = work / "stitch"
        scratch.mkdir()
        geometry = _Geometry(roi, voxel_size, block_size, self.context_voxels * voxel_size)
        common = {"geometry": geometry, "scratch": str(scratch)}
        try:
            run_blockwise(
                partial(_fragments_block, **common, offsets=self.offsets,
                        bias=parameters.bias, watershed_kwargs=self._watershed_kwargs()),
                inputs={"prediction": str(self.prediction)},
                output=output_array, block_size=block_size, context=geometry.context,
                num_workers=num_workers, log_dir=work, task_id="fragments", progress=False,
            )
            _stitch(scratch, geometry, parameters.bias, parameters.min_size)
            run_blockwise(
                partial(_relabel_block, **common),
                inputs={"fragments": str(output_array)},
                output=output_array, block_size=block_size, context=None,
                num_workers=num_workers, log_dir=work, task_id="relabel", progress=False,
            )
        finally:
            shutil.rmtree(scratch if log_dir is not None else work, ignore_errors=True)


# ----------------------------------------------------------------------------------------
# helpers (module level so that blockwise workers can unpickle them)
# ----------------------------------------------------------------------------------------


def _container_parent(path: Path) -> Path:
    """The directory holding the zarr container of ``path`` (or its parent)."""
    path = path.absolute()
    for parent in [path, *path.parents]:
        if parent.suffix in (".zarr", ".n5", ".zarr2", ".zarr3"):
            return parent.parent
    return path.parent


def _affinities(data: np.ndarray, num_offsets: int, dims: int) -> np.ndarray:
    """The first ``num_offsets`` channels as float64 in [0, 1] (ints scaled by dtype max)."""
    if data.ndim == dims:
        data = data[None]
    affs = data[:num_offsets]
    if np.issubdtype(affs.dtype, np.integer):
        return affs.astype(np.float64) / np.iinfo(affs.dtype).max
    return affs.astype(np.float64, copy=False)


@dataclass(frozen=True)
class _Geometry:
    """The block grid of a blockwise run (world units)."""

    total_roi: Roi
    voxel_size: Coordinate
    block_size: Coordinate
    context: Coordinate

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return tuple(math.ceil(s / b) for s, b in zip(self.total_roi.shape, self.block_size))

    @property
    def ids_per_block(self) -> int:
        return int(np.prod((self.block_size + self.context * 2) / self.voxel_size))

    def grid_position(self, write_roi: Roi) -> tuple[int, ...]:
        return tuple((write_roi.offset - self.total_roi.offset) / self.block_size)

    def block_index(self, write_roi: Roi) -> int:
        return int(np.ravel_multi_index(self.grid_position(write_roi), self.grid_shape))

    def id_base(self, index: int) -> int:
        return index * self.ids_per_block

    def slices(self, roi: Roi, within: Roi) -> tuple[slice, ...]:
        """Voxel slices of ``roi`` in an array covering ``within``."""
        return ((roi - within.offset) / self.voxel_size).to_slices()


def _roi_arrays(roi: Roi) -> dict[str, np.ndarray]:
    return {"offset": np.asarray(roi.offset, np.int64), "shape": np.asarray(roi.shape, np.int64)}


def _fragments_block(prediction: np.ndarray, block, *, geometry: _Geometry, scratch: str,
                     offsets, bias: float, watershed_kwargs: dict) -> np.ndarray:
    """Pass 1: mutex watershed on the read ROI; write-ROI ids made globally unique."""
    import fastremap

    index = geometry.block_index(block.write_roi)
    read_roi, write_roi = block.read_roi, block.write_roi
    valid = read_roi.intersect(geometry.total_roi)
    dims = geometry.voxel_size.dims
    affs = _affinities(prediction, len(offsets), dims)[(slice(None),) + geometry.slices(valid, read_roi)]
    kwargs = dict(watershed_kwargs)
    if kwargs.get("randomized_strides") and kwargs.get("seed") is not None:
        kwargs["seed"] = [int(kwargs["seed"]), index]
    local = mutex_watershed(affs, offsets, bias, **kwargs)
    local, _ = fastremap.renumber(local, preserve_zero=True, in_place=True)
    local = local.astype(np.uint64, copy=False)
    num_local = int(local.max()) if local.size else 0
    base = np.uint64(geometry.id_base(index))
    local[local != 0] += base

    labels = np.zeros(tuple(read_roi.shape / geometry.voxel_size), np.uint64)
    labels[geometry.slices(valid, read_roi)] = local
    written = labels[geometry.slices(write_roi, read_roi)].copy()
    ids, sizes, sums = fragment_statistics(
        written, affs[(slice(None),) + geometry.slices(write_roi, valid)]
    )
    core = write_roi.grow(-geometry.context, -geometry.context)
    if not core.empty:
        labels[geometry.slices(core, read_roi)] = 0  # no neighbour sees the core
    folder = Path(scratch)
    np.savez_compressed(folder / f"labels_{index}.npz", labels=labels,
                        **{f"read_{k}": v for k, v in _roi_arrays(read_roi).items()},
                        **{f"write_{k}": v for k, v in _roi_arrays(write_roi).items()})
    np.savez(folder / f"stats_{index}.npz", ids=ids, sizes=sizes, sums=sums,
             base=np.uint64(base), num_local=np.int64(num_local))
    return written


@dataclass
class _BlockLabels:
    labels: np.ndarray
    read_roi: Roi
    write_roi: Roi


def _load_labels(scratch: Path, index: int) -> _BlockLabels:
    with np.load(scratch / f"labels_{index}.npz") as f:
        return _BlockLabels(
            f["labels"],
            Roi(Coordinate(f["read_offset"]), Coordinate(f["read_shape"])),
            Roi(Coordinate(f["write_offset"]), Coordinate(f["write_shape"])),
        )


def _half_neighbourhood(dims: int) -> list[tuple[int, ...]]:
    """Grid steps to the 'later' half of the 3^d - 1 neighbours (each pair once)."""
    return [d for d in product((-1, 0, 1), repeat=dims) if d > (0,) * dims]


def _pair_merges(x: _BlockLabels, y: _BlockLabels, geometry: _Geometry) -> list[np.ndarray]:
    """Merges between two blocks: each block is authoritative in its own write ROI."""
    merges = []
    for auth, ctx in ((x, y), (y, x)):
        region = auth.write_roi.intersect(ctx.read_roi)
        if region.empty:
            continue
        merges.append(majority_pairs(
            auth.labels[geometry.slices(region, auth.read_roi)],
            ctx.labels[geometry.slices(region, ctx.read_roi)],
        ))
    return merges


def _stitch(scratch: Path, geometry: _Geometry, bias: float, min_size: int) -> None:
    """Pass 2: merge pairs over all neighbouring blocks -> per-block lookup tables."""
    grid = geometry.grid_shape
    indices = sorted(int(p.stem.split("_")[1]) for p in scratch.glob("stats_*.npz"))
    present = set(indices)
    merges: list[np.ndarray] = []
    for index in indices:
        position = np.unravel_index(index, grid)
        x = None
        for step in _half_neighbourhood(len(grid)):
            other = tuple(p + s for p, s in zip(position, step))
            if any(o < 0 or o >= g for o, g in zip(other, grid)):
                continue
            other_index = int(np.ravel_multi_index(other, grid))
            if other_index not in present:
                continue
            x = _load_labels(scratch, index) if x is None else x
            merges += _pair_merges(x, _load_labels(scratch, other_index), geometry)
    ids, roots = merge_components(np.concatenate(merges) if merges else np.zeros((0, 2)))
    root_ids, root_of = np.unique(roots, return_inverse=True)
    root_sizes = np.zeros(len(root_ids), np.int64)
    root_sums = np.zeros(len(root_ids), np.float64)
    stats = {}
    for index in indices:
        with np.load(scratch / f"stats_{index}.npz") as f:
            stats = {k: f[k] for k in f.files}
        where, found = _lookup(ids, stats["ids"])
        np.add.at(root_sizes, root_of[where[found]], stats["sizes"][found])
        np.add.at(root_sums, root_of[where[found]], stats["sums"][found])
    root_keep = keep_fragments(root_sizes, root_sums, bias, min_size)
    logger.info("watershed stitching: %d blocks, %d merge pairs, %d boundary objects",
                len(indices), sum(len(m) for m in merges), len(root_ids))
    for index in indices:
        with np.load(scratch / f"stats_{index}.npz") as f:
            stats = {k: f[k] for k in f.files}
        frag_ids = stats["ids"]
        final = np.where(keep_fragments(stats["sizes"], stats["sums"], bias, min_size),
                         frag_ids, np.uint64(0)).astype(np.uint64)
        where, found = _lookup(ids, frag_ids)
        final[found] = np.where(root_keep[root_of[where[found]]], roots[where[found]], 0)
        lut = np.zeros(int(stats["num_local"]) + 1, np.uint64)
        lut[(frag_ids - stats["base"]).astype(np.int64)] = final
        np.save(scratch / f"lut_{index}.npy", lut)


def _lookup(sorted_ids: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``values`` in ``sorted_ids`` and whether each was found."""
    where = np.searchsorted(sorted_ids, values)
    where = np.minimum(where, max(len(sorted_ids) - 1, 0))
    found = (sorted_ids[where] == values) if len(sorted_ids) else np.zeros(len(values), bool)
    return where, found


def _relabel_block(fragments: np.ndarray, block, *, geometry: _Geometry, scratch: str) -> np.ndarray:
    """Pass 3: map the block's fragment ids to final ids through its lookup table."""
    index = geometry.block_index(block.write_roi)
    lut = np.load(Path(scratch) / f"lut_{index}.npy")
    base = np.uint64(geometry.id_base(index))
    local = np.where(fragments != 0, fragments - base, np.uint64(0)).astype(np.int64)
    return lut[local]
