"""Blockwise fragments + agglomeration: per-block functions, the graph store, the global cut.

Used by `dacapo.experiments.tasks.post_processors.AgglomerationPostProcessor` for zarr
predictions; free of torch and of the task package so daisy workers start quickly.

Passes (each a `dacapo.blockwise.run_blockwise` task with done-markers, so a re-run resumes):

1. `fragments_block`: `dacapo.ops.agglomeration.watershed_fragments` on the block's write
   ROI grown by the fragments context (cut to the volume), written in the write ROI. A
   fragment's id is 1 + the linear index (in the whole volume) of its seed's first voxel:
   unique, and the same in every block that finds the seed, so a fragment cut by a block face
   stays one fragment where the context makes both blocks agree (with too little context
   the two pieces are two fragments, joined or not by the agglomeration).
2. `edges_block`: fragments and affinities of the write ROI grown by the edges context;
   `dacapo.ops.agglomeration.merge_scores` (waterz on the read ROI) gives the edges and their
   merge levels. A fragment belongs to the block holding its seed; the block stores its own
   fragments (id, centre of mass and size of the part it sees) as nodes and the edges whose
   smaller id is one of its own fragments (each edge once) into the graph database
   (`dacapo.segment.graph_store.GraphStore`: SQLite by default, PostgreSQL with a URL), in
   one transaction with the block's done row: a killed worker leaves no half block, and a
   block already in the database is skipped. Contacts of a fragment beyond the owner's
   read ROI are not seen (none with enough context).
3. `global_luts` (driver): the edges below the largest threshold stream from the database
   in ascending merge level into one union-find on dense node indices
   (`dacapo.ops.union_find`), snapshotted at each threshold (representative = smallest
   fragment id) -> one lookup table fragment id -> segment id per threshold. Memory: the
   node ids (16 bytes per fragment) and one chunk of edges; time linear in the edges.
4. `relabel_block`: each block maps its fragments through the lookup table.

The merge levels near block faces come from a block's view with context, so the blockwise
result approaches the one-block result (`ops.agglomeration` on the whole volume, exactly
waterz's) as the edges context grows; with one block it is identical.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import cc3d
import fastremap
import numpy as np
from funlib.geometry import Coordinate, Roi

from dacapo.blockwise.grid import BlockGeometry
from dacapo.ops.agglomeration import merge_scores, nearest_neighbour_affinities, watershed_fragments
from dacapo.ops.union_find import components_by_threshold
from dacapo.segment.graph_store import GraphStore

logger = logging.getLogger(__name__)

__all__ = [
    "GraphStore",
    "edges_block",
    "fragments_block",
    "global_luts",
    "owner_blocks",
    "read_edges",
    "relabel_block",
]


def _valid(block, geometry: BlockGeometry) -> Roi:
    return block.read_roi.intersect(geometry.total_roi)


def fragments_block(prediction: np.ndarray, block, *, geometry: BlockGeometry, channels,
                    threshold: float, seed_distance: int) -> np.ndarray:
    """Pass 1: fragments of the read ROI (inside the volume), ids from seed positions."""
    valid = _valid(block, geometry)
    affs = nearest_neighbour_affinities(prediction, channels)
    affs = affs[(slice(None),) + geometry.slices(valid, block.read_roi)]
    origin = (valid.offset - geometry.total_roi.offset) / geometry.voxel_size
    local = watershed_fragments(affs, tuple(geometry.voxel_size), threshold, seed_distance,
                                origin=tuple(origin), volume_shape=_volume_shape(geometry))
    del affs
    return local[geometry.slices(block.write_roi, valid)]


def _volume_shape(geometry: BlockGeometry) -> tuple[int, ...]:
    return tuple(geometry.total_roi.shape / geometry.voxel_size)


def owner_blocks(ids: np.ndarray, geometry: BlockGeometry) -> np.ndarray:
    """Block index of the seed of each fragment id (`position_ids`)."""
    coords = np.unravel_index(np.asarray(ids, np.int64) - 1, _volume_shape(geometry))
    steps = geometry.block_size / geometry.voxel_size
    grid = tuple(c // s for c, s in zip(coords, steps))
    return np.ravel_multi_index(grid, geometry.grid_shape)


def _nodes(fragments: np.ndarray, ids: np.ndarray, offset: Coordinate,
           voxel_size: Coordinate) -> tuple[np.ndarray, np.ndarray]:
    """Centre of mass (world units, (n, dims)) and size of each fragment in ``ids``."""
    if len(ids) == 0:
        return np.zeros((0, fragments.ndim)), np.zeros(0, np.int64)
    dense, mapping = fastremap.renumber(fragments, preserve_zero=True, in_place=False)
    stats = cc3d.statistics(dense.astype(np.uint32, copy=False), no_slice_conversion=True)
    index = np.array([mapping.get(int(i), 0) for i in ids], np.int64)
    counts = np.asarray(stats["voxel_counts"])
    sizes = np.where(index > 0, counts[index], 0)
    centres = np.where((index > 0)[:, None], np.asarray(stats["centroids"], float)[index], 0.0)
    positions = np.asarray(offset, float) + (centres + 0.5) * np.asarray(voxel_size, float)
    return positions, sizes.astype(np.int64)


def edges_block(prediction: np.ndarray, fragments: np.ndarray, block, *, geometry: BlockGeometry,
                channels, quantile: int, store: GraphStore) -> np.ndarray:
    """Pass 2: merge levels on the read ROI; own nodes and edges to the graph store in one
    transaction (nothing to do for a block already stored)."""
    index = int(geometry.block_index(block.write_roi))
    done = np.ones(tuple(block.write_roi.shape / geometry.voxel_size), np.uint8)
    if store.is_done(index):
        return done
    valid = _valid(block, geometry)
    crop = (slice(None),) + geometry.slices(valid, block.read_roi)
    affs = nearest_neighbour_affinities(prediction, channels)[crop]
    fragments = np.ascontiguousarray(fragments[crop[1:]], dtype=np.uint64)
    edges, levels, scores, areas = merge_scores(fragments, affs, quantile)
    del affs
    ids = fastremap.unique(fragments)
    ids = ids[ids != 0]
    own_ids = ids[owner_blocks(ids, geometry) == index]
    positions, sizes = _nodes(fragments, own_ids, valid.offset, geometry.voxel_size)
    own = np.isin(edges[:, 0], own_ids) if len(edges) else np.zeros(0, bool)
    store.write_block(index, own_ids, positions, sizes, edges[own], levels[own], scores[own],
                      areas[own])
    return done


def read_edges(store: GraphStore) -> tuple[np.ndarray, np.ndarray]:
    """All edges ``(n, 2) uint64`` (sorted) and their merge levels (float32): for tests
    and small graphs (the global cut streams them, `global_luts`)."""
    parts = list(store.sorted_edges(np.inf))
    if not parts:
        return np.zeros((0, 2), np.uint64), np.zeros(0, np.float32)
    u, v, levels = (np.concatenate(x) for x in zip(*parts))
    edges = np.stack([u, v], axis=1).astype(np.uint64)
    order = np.lexsort((edges[:, 1], edges[:, 0]))
    return edges[order], levels[order]


def global_luts(store: GraphStore, thresholds: Sequence[float],
                paths: Sequence[str | Path]) -> None:
    """Pass 3: for each threshold, the components of the edges with level < threshold ->
    ``paths[k]`` (npz: ``ids``, ``roots``: the fragments whose segment is named after
    another, smallest, fragment), written atomically; one streamed pass over the edges."""
    ids = store.node_ids()
    chunks = store.sorted_edges(max(thresholds))
    for threshold, path, (moved, roots) in zip(
            thresholds, paths, components_by_threshold(ids, chunks, thresholds)):
        path = Path(path)
        tmp = path.with_name(f".{path.stem}.tmp.npz")
        np.savez(tmp, ids=moved.astype(np.uint64), roots=roots.astype(np.uint64))
        os.replace(tmp, path)
        logger.info("agglomeration at %.3f: %d fragments, %d joined to another", threshold,
                    len(ids), len(moved))


_LUTS: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def relabel_block(fragments: np.ndarray, block, *, lut: str) -> np.ndarray:
    """Pass 4: fragment ids -> segment ids (the table loaded once per worker; per block,
    only the block's own ids are looked up and remapped with fastremap)."""
    if lut not in _LUTS:
        with np.load(lut) as f:
            _LUTS.clear()
            _LUTS[lut] = (f["ids"], f["roots"])
    ids, roots = _LUTS[lut]
    fragments = np.ascontiguousarray(fragments, dtype=np.uint64)
    present = fastremap.unique(fragments)
    if len(ids) == 0 or len(present) == 0:
        return fragments
    where = np.minimum(np.searchsorted(ids, present), len(ids) - 1)
    found = ids[where] == present
    if not found.any():
        return fragments
    table = dict(zip(present[found].tolist(), roots[where[found]].tolist()))
    return fastremap.remap(fragments, table, preserve_missing_labels=True)
