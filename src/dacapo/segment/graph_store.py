"""The fragment graph database of the blockwise agglomeration: `GraphStore`.

Three tables per graph (``<prefix>_nodes``, ``<prefix>_edges``, ``<prefix>_blocks``) in a
SQLite file (default) or a PostgreSQL database (``url``):

- nodes ``(id, <axis coordinates>, size)``: a fragment, its centre of mass (world units)
  and the size of the part its owner block sees;
- edges ``(u, v, merge_score, score, area)``, u < v, primary key (u, v): a region-adjacency
  edge, its merge level, its initial score and its contact area;
- blocks ``(block)``: the blocks whose nodes and edges are stored.

`GraphStore.write_block` writes one block's nodes, edges and its ``blocks`` row in **one
transaction**: a worker killed mid-block leaves nothing of that block, and a block listed
in ``blocks`` is complete (re-runs skip it, `GraphStore.done_blocks`). Rows are inserted
or ignored, so a block written twice (a retried block) is stored once.

`GraphStore.sorted_edges` streams ``(u, v, merge_score)`` in ascending merge level in
chunks of bounded size, through a covering index (SQLite) or a binary ``COPY`` parsed by
numpy in a reader thread (PostgreSQL): the memory of the global cut is one chunk, not the
number of edges.
"""

from __future__ import annotations

import io
import logging
import queue
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np
import psycopg2

logger = logging.getLogger(__name__)

__all__ = ["GraphStore"]

AXES = ("z", "y", "x")
#: edges per chunk of `GraphStore.sorted_edges` (~20 bytes each in numpy)
CHUNK = 1 << 20
#: a PostgreSQL binary COPY row of (bigint, bigint, real): field count, 3 x (length, value)
_PG_ROW = np.dtype([("n", ">i2"), ("lu", ">i4"), ("u", ">i8"), ("lv", ">i4"), ("v", ">i8"),
                    ("lm", ">i4"), ("m", ">f4")])
_PG_HEADER = 19  # signature (11), flags (4), header extension length (4)


@dataclass(frozen=True)
class GraphStore:
    """Where the fragment graph lives: ``url`` None -> SQLite file ``sqlite_path``;
    ``postgresql://user:password@host:port/database`` (``?host=/socket/dir`` allowed)
    -> PostgreSQL (the database is created if missing)."""

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

    @property
    def tables(self) -> tuple[str, str, str]:
        return f"{self.prefix}_nodes", f"{self.prefix}_edges", f"{self.prefix}_blocks"

    # ------------------------------------------------------------------ connections

    @contextmanager
    def connect(self):
        """A DB-API connection (closed on exit; uncommitted work rolled back)."""
        if self.url is None:
            con = sqlite3.connect(self.sqlite_path, timeout=600, isolation_level=None)
            con.execute("PRAGMA busy_timeout = 600000")  # workers write concurrently
            con.execute("PRAGMA synchronous = NORMAL")  # WAL: a killed process loses nothing
        else:
            con = psycopg2.connect(**_pg_connection(self.url))
        try:
            yield con
        finally:
            con.close()

    def create(self, overwrite: bool = False) -> None:
        """Create the tables if they do not exist (``overwrite``: drop them first)."""
        nodes, edges, blocks = self.tables
        big = "INTEGER" if self.url is None else "BIGINT"
        coords = ", ".join(f"{a} REAL" for a in AXES[-self.dims:])
        statements = [f"DROP TABLE IF EXISTS {t}" for t in self.tables] if overwrite else []
        statements += [
            f"CREATE TABLE IF NOT EXISTS {nodes} (id {big} PRIMARY KEY, {coords}, size {big})",
            f"CREATE TABLE IF NOT EXISTS {edges} (u {big} NOT NULL, v {big} NOT NULL, "
            f"merge_score REAL, score REAL, area {big}, PRIMARY KEY (u, v))",
            f"CREATE TABLE IF NOT EXISTS {blocks} (block {big} PRIMARY KEY)",
        ]
        if self.url is not None:
            _create_pg_database(self.url)
        with self.connect() as con:
            cur = con.cursor()
            if self.url is None:
                cur.execute("PRAGMA journal_mode = WAL")  # readers beside one writer
            for statement in statements:
                cur.execute(statement)
            con.commit()

    # ------------------------------------------------------------------ writing

    def write_block(self, block: int, ids: np.ndarray, positions: np.ndarray,
                    sizes: np.ndarray, edges: np.ndarray, merge_scores: np.ndarray,
                    scores: np.ndarray, areas: np.ndarray) -> None:
        """One block's nodes (``ids``, ``positions`` (n, dims), ``sizes``) and edges
        (``edges`` (m, 2), levels, scores, areas) and its ``blocks`` row, in one
        transaction (see the module docstring)."""
        node_rows = [(int(i), *map(float, p), int(s))
                     for i, p, s in zip(ids.tolist(), positions.tolist(), sizes.tolist())]
        edge_rows = list(zip(edges[:, 0].tolist(), edges[:, 1].tolist(),
                             np.asarray(merge_scores, float).tolist(),
                             np.asarray(scores, float).tolist(), areas.tolist()))
        nodes, edge_table, blocks = self.tables
        with self.connect() as con:
            cur = con.cursor()
            if self.url is None:
                cur.execute("BEGIN IMMEDIATE")
                marks = ", ".join("?" * (self.dims + 2))
                cur.executemany(f"INSERT OR IGNORE INTO {nodes} VALUES ({marks})", node_rows)
                cur.executemany(f"INSERT OR IGNORE INTO {edge_table} VALUES (?, ?, ?, ?, ?)",
                                edge_rows)
                cur.execute(f"INSERT OR IGNORE INTO {blocks} VALUES (?)", (int(block),))
                cur.execute("COMMIT")
                return
            _pg_copy(cur, nodes, node_rows, "id")
            _pg_copy(cur, edge_table, edge_rows, "u, v")
            cur.execute(f"INSERT INTO {blocks} VALUES (%s) ON CONFLICT DO NOTHING",
                        (int(block),))
            con.commit()

    # ------------------------------------------------------------------ reading

    def done_blocks(self) -> set[int]:
        """The blocks whose nodes and edges are stored."""
        with self.connect() as con:
            cur = con.cursor()
            cur.execute(f"SELECT block FROM {self.tables[2]}")
            return {int(r[0]) for r in cur.fetchall()}

    def is_done(self, block: int) -> bool:
        with self.connect() as con:
            cur = con.cursor()
            mark = "?" if self.url is None else "%s"
            cur.execute(f"SELECT 1 FROM {self.tables[2]} WHERE block = {mark}", (int(block),))
            return cur.fetchone() is not None

    def counts(self) -> dict[str, int]:
        """Rows per table (nodes, edges, blocks)."""
        with self.connect() as con:
            cur = con.cursor()
            out = {}
            for name, table in zip(("nodes", "edges", "blocks"), self.tables):
                cur.execute(f"SELECT COUNT(*) FROM {table}")
                out[name] = int(cur.fetchone()[0])
            return out

    def size_bytes(self) -> int:
        """Bytes on disk: the SQLite file (and its write-ahead log), or the PostgreSQL
        tables with their indexes."""
        if self.url is None:
            return sum(p.stat().st_size for p in (Path(self.sqlite_path),
                                                  Path(self.sqlite_path + "-wal")) if p.exists())
        with self.connect() as con:
            cur = con.cursor()
            cur.execute("SELECT " + " + ".join(f"pg_total_relation_size('{t}')"
                                               for t in self.tables))
            return int(cur.fetchone()[0])

    def node_ids(self) -> np.ndarray:
        """All node ids, sorted (int64; n nodes x 8 bytes)."""
        parts = []
        with self.connect() as con:
            cur = con.cursor()
            cur.execute(f"SELECT id FROM {self.tables[0]} ORDER BY id")
            while rows := cur.fetchmany(CHUNK):
                parts.append(np.array(rows, np.int64).reshape(-1))
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def sorted_edges(self, below: float, chunk: int = CHUNK) -> Iterator[
            tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(u, v, merge_score)`` chunks (int64, int64, float32) of the edges with merge
        level < ``below``, in ascending level (ties in any order)."""
        edges = self.tables[1]
        index = f"{edges}_by_level"
        where = f"WHERE merge_score < {float(below)!r} " if np.isfinite(below) else ""
        query = f"SELECT u, v, merge_score FROM {edges} {where}ORDER BY merge_score"
        with self.connect() as con:
            cur = con.cursor()
            if self.url is None:  # covering index: an index-only scan in level order
                cur.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {edges} "
                            "(merge_score, u, v)")
                cur.execute(query)
                while rows := cur.fetchmany(chunk):
                    table = np.array(rows, np.dtype([("u", "i8"), ("v", "i8"), ("m", "f8")]))
                    yield table["u"], table["v"], table["m"].astype(np.float32)
                return
            yield from _pg_stream(con, f"COPY ({query}) TO STDOUT WITH BINARY", chunk)


# ---------------------------------------------------------------------- PostgreSQL


def _pg_connection(url: str) -> dict:
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    return {
        "host": query.get("host", [parsed.hostname or "localhost"])[0],
        "port": parsed.port,
        "user": unquote(parsed.username) if parsed.username else None,
        "password": unquote(parsed.password) if parsed.password else None,
        "dbname": parsed.path.lstrip("/") or "dacapo",
    }


def _create_pg_database(url: str) -> None:
    """Create the URL's database if it does not exist (through the ``postgres`` one)."""
    params = _pg_connection(url)
    name = params.pop("dbname")
    con = psycopg2.connect(dbname="postgres", **params)
    con.autocommit = True
    try:
        cur = con.cursor()
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone() is None:
            try:
                cur.execute(f'CREATE DATABASE "{name}"')
            except psycopg2.errors.DuplicateDatabase:  # another process was faster
                pass
    finally:
        con.close()


def _pg_copy(cur, table: str, rows: list[tuple], key: str) -> None:
    """Insert-or-ignore ``rows`` into ``table`` through COPY into a temporary table."""
    if not rows:
        return
    cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS tmp_{table} (LIKE {table}) "
                "ON COMMIT DELETE ROWS")
    text = "".join("\t".join(map(repr, row)) + "\n" for row in rows)
    cur.copy_expert(f"COPY tmp_{table} FROM STDIN", io.StringIO(text))
    cur.execute(f"INSERT INTO {table} SELECT * FROM tmp_{table} "
                f"ON CONFLICT ({key}) DO NOTHING")


class _RowParser(io.RawIOBase):
    """File object for ``copy_expert``: parses binary COPY rows into numpy chunks.

    psycopg2 writes a COPY out row by row (~30 bytes a call): the bytes are gathered and
    parsed by numpy once ``parse_bytes`` have arrived, not per call (10⁷ edges: 68 s of
    per-row parsing before)."""

    def __init__(self, out: queue.Queue, chunk: int, parse_bytes: int = 1 << 22) -> None:
        self.out, self.chunk, self.parse_bytes = out, chunk, parse_bytes
        self.buffer = bytearray()
        self.header = True
        self.parts: list[np.ndarray] = []
        self.rows = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.buffer += data
        if len(self.buffer) >= self.parse_bytes:
            self.parse()
        return len(data)

    def parse(self) -> None:
        """Parse the whole rows gathered so far (the header first; the trailer, shorter
        than a row, stays behind)."""
        start = 0
        if self.header:
            if len(self.buffer) < _PG_HEADER:
                return
            start, self.header = _PG_HEADER, False
        n = (len(self.buffer) - start) // _PG_ROW.itemsize
        end = start + n * _PG_ROW.itemsize
        rows = np.frombuffer(bytes(self.buffer[start:end]), _PG_ROW)
        del self.buffer[:end]
        rows = rows[rows["n"] == 3]
        if len(rows):
            self.parts.append(rows[["u", "v", "m"]].copy())
            self.rows += len(rows)
        if self.rows >= self.chunk:
            self.flush_rows()

    def flush_rows(self) -> None:
        if self.parts:
            table = np.concatenate(self.parts)
            self.out.put((table["u"].astype(np.int64), table["v"].astype(np.int64),
                          table["m"].astype(np.float32)))
        self.parts, self.rows = [], 0


def _pg_stream(con, copy: str, chunk: int) -> Iterator[tuple[np.ndarray, ...]]:
    """Chunks of a binary COPY of (bigint, bigint, real) rows, read in a thread (at most
    two chunks wait), so the database and the consumer overlap."""
    out: queue.Queue = queue.Queue(maxsize=2)
    errors: list[BaseException] = []

    def read() -> None:
        parser = _RowParser(out, chunk)
        try:
            con.cursor().copy_expert(copy, parser, size=1 << 20)
            parser.parse()
            parser.flush_rows()
        except BaseException as e:  # handed to the consumer
            errors.append(e)
        out.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while (item := out.get()) is not None:
        yield item
    reader.join()
    if errors:
        raise errors[0]
