"""Blockwise mutex watershed: the per-block functions and the stitching pass.

Used by `dacapo.experiments.tasks.post_processors.WatershedPostProcessor` for zarr
predictions. Kept free of torch and of the task package so that daisy worker processes
start quickly (they import this module to unpickle the block functions).

Three passes, deterministic and independent of the number of workers:

1. `fragments_block`: each block is segmented (`dacapo.ops.watershed.mutex_watershed`) on
   its write ROI grown by the context; the write ROI is written with ids
   ``block_index * ids_per_block + local id`` (unique, uint64). The block also stores, in a
   scratch directory (`_save_arrays` files), the slabs of its labels that the stitching compares (per neighbour:
   its write ROI seen by the neighbour as context, and its context inside the neighbour's
   write ROI) and the size of each written fragment.
2. `stitch` (driver; one block's forward slabs and a neighbour's two in memory at a time):
   for every pair of blocks whose read ROIs overlap (faces, edges, corners), on the part of one block's write ROI that the other
   saw as context, each id of the other block joins the id that holds the strict majority of
   its voxels there (`dacapo.ops.watershed.majority_pairs`); the union of all pairs gives
   objects (representative: smallest id). Object sizes are the sums over their fragments,
   so ``min_size`` acts on whole objects as in one block. One lookup table per block.
3. `relabel_block`: each block maps its fragment ids through its lookup table.

Peak memory is bounded by the block size (plus the id tables of the fragments that touch
block boundaries), not by the volume.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from itertools import product
from pathlib import Path

import fastremap
import numpy as np
from funlib.geometry import Roi

from dacapo.blockwise.grid import BlockGeometry
from dacapo.ops.watershed import (
    compact,
    fragment_sizes,
    keep_fragments,
    majority_pairs_indexed,
    merge_components,
    mutex_watershed,
)

logger = logging.getLogger(__name__)

__all__ = [
    "affinity_channels",
    "fragments_block",
    "relabel_block",
    "stitch",
    "store_block_labels",
]


def affinity_channels(data: np.ndarray, num_offsets: int, dims: int) -> np.ndarray:
    """The first ``num_offsets`` channels in [0, 1]: floats as they are (no copy; the
    watershed's weights are computed in float64 from them), ints scaled by dtype max to
    float64."""
    if data.ndim == dims:
        data = data[None]
    affs = data[:num_offsets]
    if np.issubdtype(affs.dtype, np.integer):
        return affs.astype(np.float64) / np.iinfo(affs.dtype).max
    return affs


def _directions(dims: int) -> list[tuple[int, ...]]:
    """Grid steps to the 3^d - 1 neighbouring blocks."""
    return [d for d in product((-1, 0, 1), repeat=dims) if any(d)]


def _half_neighbourhood(dims: int) -> list[tuple[int, ...]]:
    """Grid steps to the 'later' half of the neighbours (each pair once)."""
    return [d for d in _directions(dims) if d > (0,) * dims]


def _key(direction: tuple[int, ...]) -> str:
    return "_".join(str(v) for v in direction)


def _slabs(labels: np.ndarray, write_roi: Roi, read_roi: Roi,
           geometry: BlockGeometry) -> dict[str, np.ndarray]:
    """The parts of a block's read-ROI labels that the stitching pass compares.

    For each neighbour (direction ``d``): ``auth_d``, this block's write ROI where the
    neighbour saw context, and ``ctx_d``, this block's context inside the neighbour's
    write ROI. ``x.auth_d`` and ``y.ctx_-d`` cover the same voxels for ``y = x + d``.
    Each slab is stored in its `compact` form, ``<name>.ids`` and ``<name>.index`` (a few
    ids per slab: one byte per voxel instead of eight, no compression needed).
    """
    slabs = {}
    for d in _directions(geometry.voxel_size.dims):
        other_write = geometry.neighbour_write_roi(write_roi, d)
        if other_write is None:
            continue
        auth = write_roi.intersect(other_write.grow(geometry.context, geometry.context))
        ctx = read_roi.intersect(other_write)
        for name, roi in ((f"auth_{_key(d)}", auth), (f"ctx_{_key(d)}", ctx)):
            ids, index = compact(labels[geometry.slices(roi, read_roi)])
            slabs[f"{name}.ids"] = ids
            slabs[f"{name}.index"] = index
    return slabs


def _slab(arrays: dict, name: str) -> tuple[np.ndarray, np.ndarray]:
    return arrays[f"{name}.ids"], arrays[f"{name}.index"]


def fragments_block(prediction: np.ndarray, block, *, geometry: BlockGeometry, scratch: str,
                    offsets, bias: float | list[float], watershed_kwargs: dict) -> np.ndarray:
    """Pass 1: mutex watershed on the read ROI; write-ROI ids made globally unique."""
    index = geometry.block_index(block.write_roi)
    valid = block.read_roi.intersect(geometry.total_roi)
    dims = geometry.voxel_size.dims
    affs = affinity_channels(prediction, len(offsets), dims)
    affs = affs[(slice(None),) + geometry.slices(valid, block.read_roi)]
    kwargs = dict(watershed_kwargs)
    if kwargs.get("randomized_strides") and kwargs.get("seed") is not None:
        kwargs["seed"] = [int(kwargs["seed"]), index]  # one stream per block, reproducible
    local = mutex_watershed(affs, offsets, bias, **kwargs)
    del affs
    return store_block_labels(local, block, geometry=geometry, scratch=scratch)


def store_block_labels(local: np.ndarray, block, *, geometry: BlockGeometry, scratch: str) -> np.ndarray:
    """Pass 1, the part shared by every per-block segmenter: ``local`` labels (0 =
    background) of the block's read ROI ∩ the volume are renumbered, made globally unique
    (``block_index * ids_per_block + local id``), and the block's stitching slabs and
    fragment sizes are saved in ``scratch``; returns the write-ROI labels (uint64)."""
    index = geometry.block_index(block.write_roi)
    read_roi, write_roi = block.read_roi, block.write_roi
    valid = read_roi.intersect(geometry.total_roi)
    local, _ = fastremap.renumber(np.ascontiguousarray(local), preserve_zero=True, in_place=True)
    local = local.astype(np.uint64, copy=False)
    num_local = int(local.max()) if local.size else 0
    base = np.uint64(geometry.id_base(index))
    np.add(local, base, out=local, where=local != 0)

    if valid == read_roi:
        labels = local
    else:
        labels = np.zeros(tuple(read_roi.shape / geometry.voxel_size), np.uint64)
        labels[geometry.slices(valid, read_roi)] = local
    del local
    written = labels[geometry.slices(write_roi, read_roi)].copy()
    ids, sizes = fragment_sizes(written)
    folder = Path(scratch)
    # written last and atomically: a block with stats has its slabs (a re-run rewrites both)
    _save_arrays(folder / f"slabs_{index}.arrays", _slabs(labels, write_roi, read_roi, geometry))
    _save_arrays(folder / f"stats_{index}.arrays", {"ids": ids, "sizes": sizes, "base": base,
                                              "num_local": np.int64(num_local)})
    return written


def _save_arrays(path: Path, arrays: dict) -> None:
    """Named arrays in one file (8-byte header length, JSON header, raw data), written
    atomically: one read and no per-array parsing when loaded (npz spent most of the
    stitching time in zip and header parsing)."""
    header, chunks, offset = [], [], 0
    for name, a in arrays.items():
        a = np.asarray(a)  # (tobytes is C order; 0-d arrays stay 0-d)
        header.append([name, a.dtype.str, list(a.shape), offset])
        chunks.append(a.tobytes())
        offset += a.nbytes
    head = json.dumps(header).encode()
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(len(head).to_bytes(8, "little"))
        f.write(head)
        f.writelines(chunks)
    os.replace(tmp, path)


def _load_arrays(path: Path, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of `_save_arrays` (all, or only ``names``: just their bytes are read)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        start = 8 + n
        header = json.loads(f.read(n))
        if names is None:  # one read of everything: views of one buffer
            data = f.read()
            return {name: np.frombuffer(data, dtype, count=int(np.prod(shape, dtype=np.int64)),
                                        offset=offset).reshape(shape)
                    for name, dtype, shape, offset in header}
        wanted, arrays = set(names), {}
        for name, dtype, shape, offset in header:
            if name in wanted:
                count = int(np.prod(shape, dtype=np.int64))
                f.seek(start + offset)
                arrays[name] = np.frombuffer(f.read(count * np.dtype(dtype).itemsize), dtype,
                                             count=count).reshape(shape)
    return arrays


def _load_stats(scratch: Path, index: int) -> dict[str, np.ndarray]:
    return _load_arrays(scratch / f"stats_{index}.arrays")


def _load_slabs(scratch: Path, index: int, *slabs: str) -> dict[str, np.ndarray]:
    """The named slabs (ids and index arrays) of block ``index``."""
    names = [f"{slab}.{part}" for slab in slabs for part in ("ids", "index")]
    return _load_arrays(scratch / f"slabs_{index}.arrays", names)


def _lookup(sorted_ids: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``values`` in ``sorted_ids`` and whether each was found."""
    if len(sorted_ids) == 0:
        return np.zeros(len(values), np.int64), np.zeros(len(values), bool)
    where = np.minimum(np.searchsorted(sorted_ids, values), len(sorted_ids) - 1)
    return where, sorted_ids[where] == values


def stitch(scratch: str | Path, geometry: BlockGeometry, min_size: int) -> None:
    """Pass 2: merge pairs over all neighbouring blocks -> per-block lookup tables."""
    scratch = Path(scratch)
    grid = geometry.grid_shape
    indices = sorted(int(p.stem.split("_")[1]) for p in scratch.glob("stats_*.arrays"))
    present = set(indices)
    merges: list[np.ndarray] = []
    steps = _half_neighbourhood(len(grid))
    # each slab is read once: a block's forward slabs when it is visited, a neighbour's
    # two when their pair is compared; memory is independent of the grid (a cache of a
    # plane of blocks' slabs grew with the cross-section: distance instances' largest
    # process 486 -> 733 MiB from 100 Mvoxel to 1 Gvoxel with it; docs/performance.md)
    forward = [name for step in steps for name in (f"auth_{_key(step)}", f"ctx_{_key(step)}")]
    for index in indices:
        position = np.unravel_index(index, grid)
        x = _load_slabs(scratch, index, *forward)
        for step in steps:
            other = tuple(int(p) + s for p, s in zip(position, step))
            if any(o < 0 or o >= g for o, g in zip(other, grid)):
                continue
            other_index = int(np.ravel_multi_index(other, grid))
            if other_index not in present:
                continue
            back = tuple(-v for v in step)
            y = _load_slabs(scratch, other_index, f"auth_{_key(back)}", f"ctx_{_key(back)}")
            # each block is authoritative in its own write ROI
            merges.append(majority_pairs_indexed(*_slab(x, f"auth_{_key(step)}"),
                                                 *_slab(y, f"ctx_{_key(back)}")))
            merges.append(majority_pairs_indexed(*_slab(y, f"auth_{_key(back)}"),
                                                 *_slab(x, f"ctx_{_key(step)}")))
    ids, roots = merge_components(np.concatenate(merges) if merges else np.zeros((0, 2)))
    root_ids, root_of = np.unique(roots, return_inverse=True)
    root_sizes = np.zeros(len(root_ids), np.int64)
    for index in indices:
        stats = _load_stats(scratch, index)
        where, found = _lookup(ids, stats["ids"])
        np.add.at(root_sizes, root_of[where[found]], stats["sizes"][found])
    root_keep = keep_fragments(root_sizes, min_size)
    logger.info("watershed stitching: %d blocks, %d merge pairs, %d boundary objects",
                len(indices), sum(len(m) for m in merges), len(root_ids))
    for index in indices:
        stats = _load_stats(scratch, index)
        frag_ids = stats["ids"]
        final = np.where(keep_fragments(stats["sizes"], min_size), frag_ids, np.uint64(0))
        final = final.astype(np.uint64)
        where, found = _lookup(ids, frag_ids)
        final[found] = np.where(root_keep[root_of[where[found]]], roots[where[found]], 0)
        lut = np.zeros(int(stats["num_local"]) + 1, np.uint64)
        lut[(frag_ids - stats["base"]).astype(np.int64)] = final
        np.save(scratch / f"lut_{index}.npy", lut)


def relabel_block(fragments: np.ndarray, block, *, geometry: BlockGeometry, scratch: str) -> np.ndarray:
    """Pass 3: map the block's fragment ids to final ids through its lookup table."""
    index = geometry.block_index(block.write_roi)
    lut = np.load(Path(scratch) / f"lut_{index}.npy")
    base = np.uint64(geometry.id_base(index))
    local = np.where(fragments != 0, fragments - base, np.uint64(0)).astype(np.int64)
    return lut[local]
