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
   (`GraphStore`: funlib.persistence SQLite by default, PostgreSQL with a URL). Contacts of a
   fragment beyond the owner's read ROI are not seen (none with enough context). Writes are
   INSERT-or-ignore, so a block re-run after a crash does not duplicate rows.
3. `global_lut` (driver): all edges are read (memory ~ the number of edges, not voxels),
   components of the edges with merge level < threshold (union-find, representative =
   smallest fragment id) -> lookup table fragment id -> segment id.
4. `relabel_block`: each block maps its fragments through the lookup table.

The merge levels near block faces come from a block's view with context, so the blockwise
result approaches the one-block result (`ops.agglomeration` on the whole volume, exactly
waterz's) as the edges context grows; with one block it is identical.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np
import psycopg2
from funlib.geometry import Coordinate, Roi
from funlib.persistence.graphs import PgSQLGraphDatabase, SQLiteGraphDataBase
from funlib.persistence.types import Vec

from dacapo.blockwise.grid import BlockGeometry
from dacapo.ops.agglomeration import (
    agglomerate_edges,
    merge_scores,
    nearest_neighbour_affinities,
    relabel,
    watershed_fragments,
)

logger = logging.getLogger(__name__)

__all__ = [
    "GraphStore",
    "edges_block",
    "fragments_block",
    "global_lut",
    "owner_blocks",
    "read_edges",
    "relabel_block",
]

NODE_ATTRS_SIZE = "size"


@dataclass(frozen=True)
class GraphStore:
    """Where the fragment graph lives: ``url`` None -> SQLite file ``sqlite_path``;
    ``postgresql://user:password@host:port/database`` (``?host=/socket/dir`` allowed)
    -> PostgreSQL, tables ``<prefix>_nodes``, ``<prefix>_edges``, ``<prefix>_meta``."""

    dims: int
    sqlite_path: str | None = None
    url: str | None = None
    prefix: str = "fragments"

    def __post_init__(self) -> None:
        if self.url is None and self.sqlite_path is None:
            raise ValueError("GraphStore: give a sqlite_path or a PostgreSQL url")
        if self.url is not None:
            scheme = urlparse(self.url).scheme
            if scheme not in ("postgresql", "postgres"):
                raise ValueError(f"agglomeration db_url: expected postgresql://..., got scheme "
                                 f"{scheme!r}")
        if not self.prefix.replace("_", "").isalnum():
            raise ValueError(f"GraphStore: table prefix {self.prefix!r} must be alphanumeric")

    @property
    def kind(self) -> str:
        return "sqlite" if self.url is None else "postgresql"

    def open(self, mode: str = "r+"):
        """The funlib.persistence graph database (mode ``w`` creates it, dropping old
        tables of this prefix)."""
        kwargs = dict(
            position_attribute="position", mode=mode, directed=False,
            nodes_table=f"{self.prefix}_nodes", edges_table=f"{self.prefix}_edges",
            node_attrs={"position": Vec(float, self.dims), NODE_ATTRS_SIZE: int},
            edge_attrs={"merge_score": float, "score": float, "area": int},
        )
        if self.url is None:
            db = SQLiteGraphDataBase(Path(self.sqlite_path), **kwargs)
            db.con.execute("PRAGMA busy_timeout = 120000")  # workers write concurrently
            return db
        return PgGraph(**_pg_connection(self.url), meta_table=f"{self.prefix}_meta", **kwargs)


def _pg_connection(url: str) -> dict:
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    host = query.get("host", [parsed.hostname or "localhost"])[0]
    name = parsed.path.lstrip("/") or "dacapo"
    return {
        "db_host": host,
        "db_port": parsed.port,
        "db_user": unquote(parsed.username) if parsed.username else None,
        "db_password": unquote(parsed.password) if parsed.password else None,
        "db_name": name,
    }


class PgGraph(PgSQLGraphDatabase):
    """funlib's PostgreSQL graph with its metadata in a table of its own (funlib keeps one
    table ``metadata`` per database, so two graphs in one database would overwrite it)."""

    def __init__(self, *, meta_table: str, **kwargs) -> None:
        self._meta_table = meta_table
        super().__init__(**kwargs)

    def _drop_tables(self) -> None:
        for table in (self.nodes_table_name, self.edges_table_name, self._meta_table):
            self.cur.execute(f"DROP TABLE IF EXISTS {table}")
        self._commit()

    def _store_metadata(self, metadata) -> None:
        self.cur.execute(f"DROP TABLE IF EXISTS {self._meta_table}")
        self.cur.execute(f"CREATE TABLE {self._meta_table} (value VARCHAR)")
        self.cur.execute(f"INSERT INTO {self._meta_table} (value) VALUES (%s)",
                         (json.dumps(metadata),))
        self._commit()

    def _read_metadata(self):
        try:
            self.cur.execute(f"SELECT value FROM {self._meta_table}")
        except psycopg2.errors.UndefinedTable:
            self.connection.rollback()
            return None
        row = self.cur.fetchone()
        return None if row is None else json.loads(row[0])


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
           voxel_size: Coordinate) -> dict[int, dict]:
    """Centre of mass (world units) and size of each fragment in ``ids``."""
    if len(ids) == 0:
        return {}
    flat = fragments.reshape(-1)
    where = np.searchsorted(ids, flat)
    where = np.minimum(where, len(ids) - 1)
    inside = ids[where] == flat
    index = where[inside]
    sizes = np.bincount(index, minlength=len(ids))
    coords = np.unravel_index(np.flatnonzero(inside), fragments.shape)
    centres = [np.bincount(index, weights=c, minlength=len(ids)) / np.maximum(sizes, 1)
               for c in coords]
    nodes = {}
    for k, node in enumerate(ids.tolist()):
        position = tuple(float(o + (c[k] + 0.5) * v)
                         for o, c, v in zip(offset, centres, voxel_size))
        nodes[int(node)] = {"position": position, NODE_ATTRS_SIZE: int(sizes[k])}
    return nodes


def edges_block(prediction: np.ndarray, fragments: np.ndarray, block, *, geometry: BlockGeometry,
                channels, quantile: int, store: GraphStore) -> np.ndarray:
    """Pass 2: merge levels on the read ROI; own nodes and edges to the graph store."""
    index = geometry.block_index(block.write_roi)
    valid = _valid(block, geometry)
    crop = (slice(None),) + geometry.slices(valid, block.read_roi)
    affs = nearest_neighbour_affinities(prediction, channels)[crop]
    fragments = np.ascontiguousarray(fragments[crop[1:]], dtype=np.uint64)
    edges, levels, scores, areas = merge_scores(fragments, affs, quantile)
    del affs
    ids = np.unique(fragments)
    ids = ids[ids != 0]
    own_ids = ids[owner_blocks(ids, geometry) == index]
    nodes = _nodes(fragments, own_ids, valid.offset, geometry.voxel_size)
    own = np.isin(edges[:, 0], own_ids) if len(edges) else np.zeros(0, bool)
    edge_rows = {
        (int(u), int(v)): {"merge_score": float(m), "score": float(s), "area": int(a)}
        for (u, v), m, s, a in zip(edges[own].tolist(), levels[own], scores[own], areas[own])
    }
    db = store.open("r+")
    try:
        db.write_nodes(nodes)
        db.write_edges(nodes, edge_rows)
    finally:
        db.close()
    return np.ones(tuple(block.write_roi.shape / geometry.voxel_size), np.uint8)


def read_edges(store: GraphStore) -> tuple[np.ndarray, np.ndarray]:
    """All edges ``(n, 2) uint64`` (sorted) and their merge levels (float32)."""
    db = store.open("r")
    try:
        rows = db.read_edges(read_attrs=["merge_score"])
    finally:
        db.close()
    if not rows:
        return np.zeros((0, 2), np.uint64), np.zeros(0, np.float32)
    edges = np.array([(r["u"], r["v"]) for r in rows], np.uint64)
    levels = np.array([r["merge_score"] for r in rows], np.float32)
    order = np.lexsort((edges[:, 1], edges[:, 0]))
    return edges[order], levels[order]


def global_lut(edges: np.ndarray, levels: np.ndarray, threshold: float,
               path: str | Path) -> None:
    """Pass 3: components of the edges with level < threshold -> ``path`` (npz: ids,
    roots), written atomically."""
    ids, roots = agglomerate_edges(edges, levels, threshold)
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, ids=ids, roots=roots)
    os.replace(tmp, path)
    logger.info("agglomeration at %.3f: %d edges, %d fragments joined into %d segments",
                threshold, len(edges), len(ids), len(np.unique(roots)))


_LUTS: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def relabel_block(fragments: np.ndarray, block, *, lut: str) -> np.ndarray:
    """Pass 4: fragment ids -> segment ids (loaded once per worker)."""
    if lut not in _LUTS:
        with np.load(lut) as f:
            _LUTS.clear()
            _LUTS[lut] = (f["ids"], f["roots"])
    ids, roots = _LUTS[lut]
    return relabel(fragments, ids, roots)

