"""Fragments + agglomeration under kills, on SQLite and on PostgreSQL (a throwaway server):

- a write of one block's nodes and edges SIGKILLed at random moments leaves all of the
  block or nothing of it in the database;
- the blockwise post-processor (2 worker processes) SIGKILLed with its workers in the
  edges pass (the fragments pass is an array job like those of tests/system/test_faults.py):
  the database then holds only whole blocks; the run finished in a new call skips the
  stored blocks (their done-markers untouched) and its segmentations equal an
  uninterrupted run's (one in this process on SQLite, for both databases).

Kill points come from ``DACAPO_FAULT_SEED`` (default 0), named in every assertion message.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from funlib.geometry import Coordinate

from dacapo.blockwise import BlockwiseOptions
from dacapo.blockwise.grid import BlockGeometry
from dacapo.experiments.tasks.post_processors import AgglomerationPostProcessor
from dacapo.experiments.tasks.post_processors.agglomeration_post_processor import _table_prefix
from dacapo.io.arrays import open_array
from dacapo.segment.graph_store import GraphStore
from dacapo.segment.rag_agglomeration import owner_blocks, read_edges
from tests.references import AGGLOMERATION_OFFSETS as OFFSETS
from tests.references import make_labels, noisy_affinities
from tests.segment.conftest import _write_prediction
from tests.segment.references import VOXEL

pytest.importorskip("waterz")

SEED = int(os.environ.get("DACAPO_FAULT_SEED", "0"))
SHAPE = (32, 48, 48)
BLOCK = Coordinate(16, 16, 16)  # 2 x 3 x 3 = 18 blocks


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request):
    return None if request.param == "sqlite" else request.getfixturevalue("postgres_url")


def _store(url, tmp_path: Path, prefix: str) -> GraphStore:
    return GraphStore(dims=3, sqlite_path=str(tmp_path / f"{prefix}.db"), url=url,
                      prefix=prefix)


def _fork(target, *args):
    proc = multiprocessing.get_context("fork").Process(target=target, args=args)
    proc.start()
    return proc


def _kill_group(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.join()


# ---------------------------------------------------------------- one block's transaction


def _big_block(n: int = 30_000):
    rng = np.random.default_rng(SEED)
    ids = np.arange(1, n + 1, dtype=np.int64)
    edges = np.stack([ids[:-1], ids[1:]], axis=1)
    return (7, ids, rng.random((n, 3)), np.ones(n, np.int64), edges,
            rng.random(n - 1).astype(np.float32), rng.random(n - 1), np.ones(n - 1, np.int64))


def _write(store: GraphStore, started) -> None:
    os.setsid()
    block = _big_block()
    started.set()
    store.write_block(*block)


def test_killed_write_leaves_all_or_nothing(db_url, tmp_path):
    rng = np.random.default_rng(SEED)
    for attempt in range(3):
        store = _store(db_url, tmp_path, f"kill_{attempt}")
        store.create(overwrite=True)
        t0 = time.perf_counter()
        if attempt == 0:  # the time of one whole write, to spread the kills over it
            store.write_block(*_big_block())
            seconds = time.perf_counter() - t0
            counts = store.counts()
            assert counts == {"nodes": 30_000, "edges": 29_999, "blocks": 1}
            continue
        started = multiprocessing.get_context("fork").Event()
        proc = _fork(_write, store, started)
        assert started.wait(30)
        time.sleep(float(rng.uniform(0.05, 1.0)) * seconds)
        _kill_group(proc)
        got = store.counts()
        assert got in ({"nodes": 0, "edges": 0, "blocks": 0}, counts), (SEED, attempt, got)
        store.write_block(*_big_block())  # the re-run stores the block once
        assert store.counts() == counts


# ---------------------------------------------------------------- the post-processor


def _post(url) -> AgglomerationPostProcessor:
    return AgglomerationPostProcessor(OFFSETS, thresholds=[0.3, 0.5], seed_distance=3,
                                      db_url=url)


def _run(url, prediction: str, out: str, log: str, workers: int) -> None:
    os.setsid()
    post = _post(url)
    post.set_prediction(prediction)
    params = list(post.enumerate_parameters())
    for p in params:
        post.process(p, f"{out}/{p.id}", BlockwiseOptions(num_workers=workers, log_dir=log),
                     block_size=BLOCK * VOXEL)


def _markers(folder: Path) -> dict[str, int]:
    """Done-markers by name and mtime; a marker being written (hidden ``.*.tmp``, renamed
    away at any moment by a live worker) is not one yet."""
    done = folder / "done"
    if not done.is_dir():
        return {}
    out = {}
    for p in done.iterdir():
        if p.name.startswith("."):
            continue
        try:
            out[p.name] = p.stat().st_mtime_ns
        except FileNotFoundError:  # pragma: no cover - removed between listing and stat
            continue
    return out


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    """The prediction and the uninterrupted run's segmentations (in this process, SQLite)."""
    tmp = tmp_path_factory.mktemp("faults")
    labels = make_labels(SHAPE, num=30, seed=3)
    prediction = _write_prediction(tmp / "p.zarr" / "affs", noisy_affinities(labels))
    _run_here(None, prediction, str(tmp / "clean.zarr"), str(tmp / "clean_logs"))
    clean = {}
    for p in _post(None).enumerate_parameters():
        array = open_array(str(tmp / "clean.zarr" / str(p.id)), "seg")
        clean[p.id] = array[array.roi]
    assert len(np.unique(clean[0])) > 5
    return prediction, clean


def test_killed_workers_resume_to_the_uninterrupted_segmentation(db_url, tmp_path, volume):
    rng = np.random.default_rng(SEED)
    prediction, clean = volume
    log, out = tmp_path / "logs", tmp_path / "o.zarr"
    post = _post(db_url)
    post.set_prediction(prediction)
    work = log / f"agglomeration_{post._work_key(BLOCK * VOXEL, log)}"
    store = GraphStore(dims=3, sqlite_path=str(work / "graph.db"), url=db_url,
                       prefix=_table_prefix(work))
    geometry = BlockGeometry(open_array(prediction, "p").roi, VOXEL, BLOCK * VOXEL,
                             post.fragments_context * VOXEL)
    total = int(np.prod(geometry.grid_shape))
    proc = _fork(_run, db_url, prediction, str(out), str(log), 2)
    target = int(rng.integers(2, total - 4))
    deadline = time.monotonic() + 60
    while proc.is_alive() and len(_markers(work / "edges")) < target:
        assert time.monotonic() < deadline, f"seed {SEED}: no progress"
        time.sleep(0.002)
    time.sleep(float(rng.uniform(0, 0.05)))
    assert proc.is_alive(), f"seed {SEED}: the run ended before the kill"
    _kill_group(proc)
    marked = _markers(work / "edges")
    stored = store.done_blocks()
    history = (target, len(marked), len(stored))
    assert len(marked) < total, (SEED, history)
    # only whole blocks: every node and edge belongs to a stored block
    edges, _ = read_edges(store)
    assert set(owner_blocks(store.node_ids(), geometry).tolist()) <= stored, (SEED, history)
    assert set(owner_blocks(edges[:, 0], geometry).tolist()) <= stored, (SEED, history)

    _run_here(db_url, prediction, str(out), str(log))
    after = _markers(work / "edges")
    assert all(after[k] == t for k, t in marked.items()), (SEED, history)  # skipped
    assert len(after) == total and store.counts()["blocks"] == total
    for p in post.enumerate_parameters():
        killed = open_array(f"{out}/{p.id}", "seg")
        np.testing.assert_array_equal(killed[killed.roi], clean[p.id],
                                      err_msg=f"seed {SEED}, {history}")


def _run_here(url, prediction: str, out: str, log: str) -> None:
    post = _post(url)
    post.set_prediction(prediction)
    for p in post.enumerate_parameters():
        post.process(p, f"{out}/{p.id}", BlockwiseOptions(num_workers=0, log_dir=log),
                     block_size=BLOCK * VOXEL)
