"""`dacapo.segment.graph_store._RowParser`: PostgreSQL's binary COPY of (bigint, bigint,
real) rows, written to it in pieces of any size (psycopg2 writes row by row), comes out
as the rows, in order, in chunks — checked against rows packed by hand with `struct`
(the format of the PostgreSQL documentation, "COPY ... BINARY")."""

from __future__ import annotations

import queue
import struct

import numpy as np

from dacapo.segment.graph_store import _RowParser


def _copy_bytes(rows: list[tuple[int, int, float]]) -> bytes:
    header = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
    body = b"".join(struct.pack(">hiqiqif", 3, 8, u, 8, v, 4, m) for u, v, m in rows)
    return header + body + struct.pack(">h", -1)


def test_rows_come_out_whole_whatever_the_pieces():
    rng = np.random.default_rng(0)
    rows = [(int(rng.integers(-2**62, 2**62)), int(rng.integers(0, 2**40)),
             float(np.float32(rng.random()))) for _ in range(257)]
    data = _copy_bytes(rows)
    out: queue.Queue = queue.Queue()
    parser = _RowParser(out, chunk=50, parse_bytes=64)
    at = 0
    while at < len(data):  # pieces of 1..60 bytes: header, rows and trailer split anywhere
        step = int(rng.integers(1, 61))
        parser.write(memoryview(data[at:at + step]))
        at += step
    parser.parse()
    parser.flush_rows()
    chunks = []
    while not out.empty():
        chunks.append(out.get())
    assert all(len(c[0]) >= 50 for c in chunks[:-1])
    u = np.concatenate([c[0] for c in chunks])
    v = np.concatenate([c[1] for c in chunks])
    m = np.concatenate([c[2] for c in chunks])
    assert u.dtype == np.int64 and m.dtype == np.float32
    assert u.tolist() == [r[0] for r in rows] and v.tolist() == [r[1] for r in rows]
    np.testing.assert_array_equal(m, np.array([r[2] for r in rows], np.float32))
