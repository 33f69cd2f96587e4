"""Load figures of the segmentation pipelines at scale (issue 25): one function per case,
chosen with ``--case``.

``agglomeration``: fragments + region-adjacency graph in a database + global agglomeration
(`AgglomerationPostProcessor` on a zarr prediction) on a synthetic uint8 affinity volume
with known objects: Voronoi cells of seeds on a jittered grid (one per ``--cell`` voxels
per axis; ~10⁵ cells in 1 Gvoxel), the 3 nearest-neighbour affinities 0.1 across a cell
face and 0.9 inside, plus Gaussian noise (sigma ``--noise``), generated block by block
(bounded memory, zarr under ``--dir``). Per configuration (workers x database), in a
process of its own: seconds and Mvoxel/s of each stage (fragments, edges -> database,
global cut at 3 thresholds in one streamed pass, relabel at each threshold), peak PSS
(``/proc/<pid>/smaps_rollup``) of the largest process and of the whole tree (workers
included; the PostgreSQL server is outside), database rows and bytes; then VOI and ARAND
against the known cells, computed block by block (sparse contingency tables added up).
``--one-block`` adds the VOI between the blockwise result and one block (in memory; only
where it fits).

``cut``: the global cut alone on ``--edges`` random edges (default 10⁷) stored in the
database: seconds to stream them in ascending level into the union-find at 3 thresholds,
and the peak memory of that process.

    .venv/bin/python benchmarks/bench_segment_load.py --case agglomeration --size 100M
    .venv/bin/python benchmarks/bench_segment_load.py --case cut --edges 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numba
import numpy as np
from _harness import ROOT, load, timed
from funlib.geometry import Coordinate, Roi

VOXEL = Coordinate(8, 8, 8)
OFFSETS = [(1, 0, 0), (0, 1, 0), (0, 0, 1)]
SIZES = {"1M": (100, 100, 100), "16M": (256, 256, 256), "100M": (464, 464, 464),
         "1G": (1024, 1024, 1024)}
THRESHOLDS = (0.3, 0.5, 0.7)


# ----------------------------------------------------------------------------- the volume


@numba.njit(cache=True)
def _hash(a: int, b: int, c: int, salt: int) -> float:
    h = (a * 73856093) ^ (b * 19349663) ^ (c * 83492791) ^ (salt * 2654435761)
    h = (h ^ (h >> 13)) * 1274126177
    return ((h ^ (h >> 16)) & 0xFFFFFF) / float(0x1000000)


@numba.njit(cache=True)
def voronoi_labels(begin: np.ndarray, shape: np.ndarray, cell: int) -> np.ndarray:
    """Cell ids (uint64, 1 + the grid cell's linear index in a 4096³ grid) of the voxels
    of the box ``begin`` + ``shape``: the nearest of the jittered seeds (one per grid
    cell of ``cell`` voxels) among the 27 grid cells around."""
    out = np.empty((shape[0], shape[1], shape[2]), np.uint64)
    for i in range(shape[0]):
        z = begin[0] + i
        for j in range(shape[1]):
            y = begin[1] + j
            for k in range(shape[2]):
                x = begin[2] + k
                gz, gy, gx = z // cell, y // cell, x // cell
                best, best_id = 1e18, 0
                for dz in range(-1, 2):
                    for dy in range(-1, 2):
                        for dx in range(-1, 2):
                            a, b, c = gz + dz, gy + dy, gx + dx
                            if a < 0 or b < 0 or c < 0:
                                continue
                            sz = a * cell + cell * _hash(a, b, c, 1)
                            sy = b * cell + cell * _hash(a, b, c, 2)
                            sx = c * cell + cell * _hash(a, b, c, 3)
                            d = (z - sz) ** 2 + (y - sy) ** 2 + (x - sx) ** 2
                            if d < best:
                                best, best_id = d, 1 + (a * 4096 + b) * 4096 + c
                out[i, j, k] = best_id
    return out


def truth(roi: Roi, cell: int) -> np.ndarray:
    begin = np.array(roi.begin / VOXEL, np.int64)
    return voronoi_labels(begin, np.array(roi.shape / VOXEL, np.int64), cell)


def affinity_block(block, cell: int, noise: float) -> np.ndarray:
    """uint8 affinities of the block's write ROI, times 255: 0.9 between two voxels of
    one cell, neither of them on the cell's surface (a face neighbour in another cell),
    else 0.1 (boundaries 2 voxels thick), plus Gaussian noise."""
    shape = np.array(block.write_roi.shape / VOXEL, np.int64)
    begin = np.array(block.write_roi.begin / VOXEL, np.int64)
    labels = voronoi_labels(begin - 1, shape + 3, cell)  # 1 voxel below, 2 above
    surface = np.zeros(labels.shape, bool)
    for d in range(3):
        lo = tuple(slice(None, -1) if e == d else slice(None) for e in range(3))
        hi = tuple(slice(1, None) if e == d else slice(None) for e in range(3))
        differ = labels[lo] != labels[hi]
        surface[lo] |= differ
        surface[hi] |= differ
    inner = tuple(slice(1, 1 + n) for n in shape)
    rng = np.random.default_rng(block.block_id)
    out = np.empty((3, *shape), np.uint8)
    for d in range(3):
        nxt = tuple(slice(2, 2 + n) if e == d else slice(1, 1 + n) for e, n in enumerate(shape))
        same = (labels[inner] == labels[nxt]) & ~surface[inner] & ~surface[nxt]
        value = np.where(same, 0.9, 0.1) + rng.normal(0, noise, same.shape)
        out[d] = np.clip(np.rint(value * 255), 0, 255).astype(np.uint8)
    return out


def _no_input(func, block):
    return func(block)


def generate(path: Path, shape, cell: int, noise: float, workers: int = 2) -> float:
    from dacapo.blockwise import BlockwiseOptions, run_blockwise
    from dacapo.io.arrays import prepare_zarr

    roi = Roi((0, 0, 0), Coordinate(shape) * VOXEL)
    block = Coordinate(128, 128, 128) * VOXEL
    prepare_zarr(path, roi, VOXEL, np.uint8, num_channels=3, write_size=block,
                 axis_names=["z", "y", "x"])
    seconds, _ = timed(run_blockwise, partial(_no_input, partial(affinity_block, cell=cell,
                                                                 noise=noise)),
                       {}, path, block, options=BlockwiseOptions(
                           num_workers=workers, progress=False,
                           log_dir=path.parent.parent / "logs" / "generate"))
    return seconds


# ----------------------------------------------------------------------------- memory


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    return kids


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    """Peak PSS (MiB) of each process of a tree and of the tree summed, every 0.2 s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.per_process, self.tree = pid, 0.0, 0.0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            kids, todo, pss = _children(), [self.pid], []
            while todo:
                p = todo.pop()
                pss.append(_pss_kib(p) / 1024)
                todo.extend(kids.get(p, []))
            self.per_process = max(self.per_process, max(pss))
            self.tree = max(self.tree, sum(pss))
            self._halt.wait(0.2)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def measure(job: dict) -> dict:
    """``job`` in a fresh process (``_job``), with the peak PSS of its tree."""
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, __file__, "_job", json.dumps(job)],
                            stdout=subprocess.PIPE, text=True, env=env)
    sampler = Sampler(proc.pid)
    sampler.start()
    out, _ = proc.communicate()
    sampler.stop()
    if proc.returncode:
        raise RuntimeError(f"job {job['case']} failed ({proc.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(peak_pss_process_mib=round(sampler.per_process),
                  peak_pss_tree_mib=round(sampler.tree))
    return result


# ----------------------------------------------------------------------------- jobs


def _agglomeration_job(job: dict) -> dict:
    """The pipeline with each pass timed (the post-processor's own passes)."""
    from dacapo.blockwise import BlockwiseOptions
    from dacapo.experiments.tasks.post_processors import AgglomerationPostProcessor

    stages: dict[str, float] = {}

    class Timed(AgglomerationPostProcessor):
        def _fragments_pass(self, *args):
            t, out = timed(super()._fragments_pass, *args)
            stages["fragments"] = t
            return out

        def _edges_pass(self, *args):
            stages["edges_db"], _ = timed(super()._edges_pass, *args)

        def _cut(self, *args):
            stages["cut_3_thresholds"], out = timed(super()._cut, *args)
            return out

    post = Timed(OFFSETS, thresholds=THRESHOLDS, seed_distance=job["seed_distance"],
                 db_url=job["db_url"])
    post.set_prediction(job["input"])
    options = BlockwiseOptions(num_workers=job["workers"], log_dir=job["log_dir"],
                               progress=False)
    block = Coordinate((job["block"],) * 3) * VOXEL
    start = time.perf_counter()
    for p in post.enumerate_parameters():
        t, _ = timed(post.process, p, f"{job['output']}/{p.id}", options, block_size=block)
        stages[f"relabel_{p.threshold}"] = t - sum(
            stages.get(k, 0) for k in ("fragments", "edges_db", "cut_3_thresholds")
        ) if p.id == 0 else t
    total = time.perf_counter() - start
    store = post._blockwise["store"]
    return {"stages": {k: round(v, 2) for k, v in stages.items()}, "total_s": round(total, 2),
            "db_rows": store.counts(), "db_mib": round(store.size_bytes() / 2**20, 1)}


def _cut_job(job: dict) -> dict:
    from dacapo.segment.graph_store import GraphStore
    from dacapo.segment.rag_agglomeration import global_luts

    store = GraphStore(dims=3, sqlite_path=job["sqlite"], url=job["db_url"], prefix="cut")
    work = Path(job["log_dir"])
    paths = [work / f"lut_{t}.npz" for t in THRESHOLDS]
    seconds, _ = timed(global_luts, store, THRESHOLDS, paths)
    joined = [len(np.load(p)["ids"]) for p in paths]
    return {"cut_s": round(seconds, 2), "joined": joined}


def _fill_cut_store(url, sqlite: str, edges: int, nodes: int) -> tuple[float, dict]:
    """``edges`` random edges between ``nodes`` nodes, written as blocks of 10⁶ edges."""
    from dacapo.segment.graph_store import GraphStore

    store = GraphStore(dims=3, sqlite_path=sqlite, url=url, prefix="cut")
    store.create(overwrite=True)
    rng = np.random.default_rng(0)
    ids = np.unique(rng.integers(1, 2**40, nodes))
    start = time.perf_counter()
    per = 1_000_000
    for b in range(0, edges, per):
        n = min(per, edges - b)
        u, v = rng.choice(ids, n), rng.choice(ids, n)
        pairs = np.unique(np.stack([np.minimum(u, v), np.maximum(u, v)], 1), axis=0)
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        m = len(pairs)
        own = ids[(b // per)::max(edges // per, 1)] if b < edges else ids[:0]
        store.write_block(b // per, own, np.zeros((len(own), 3)), np.ones(len(own), np.int64),
                          pairs, rng.random(m).astype(np.float32), rng.random(m),
                          np.ones(m, np.int64))
    return time.perf_counter() - start, store.counts()


# ----------------------------------------------------------------------------- scoring


def score(outputs: list[str], cell: int, block: int = 128) -> list[dict]:
    """VOI / ARAND of each output against the cells, block by block (tables added)."""
    from dacapo.io.arrays import open_array
    from dacapo.ops.instance_metrics import (
        adapted_rand_error,
        label_pairs,
        merge_label_pairs,
        table_from_pairs,
        variation_of_information,
    )

    arrays = [open_array(o, "seg") for o in outputs]
    roi = arrays[0].roi
    parts: list[list] = [[] for _ in arrays]
    step = Coordinate((block,) * 3) * VOXEL
    for z in range(roi.begin[0], roi.end[0], step[0]):
        for y in range(roi.begin[1], roi.end[1], step[1]):
            for x in range(roi.begin[2], roi.end[2], step[2]):
                b = Roi((z, y, x), step).intersect(roi)
                gt = truth(b, cell)
                for k, a in enumerate(arrays):
                    parts[k].append(label_pairs(a[b], gt))
                    if len(parts[k]) >= 64:
                        parts[k] = [merge_label_pairs(parts[k])]
    out = []
    for p in parts:
        table = table_from_pairs(merge_label_pairs(p))
        split, merge = variation_of_information(table)
        out.append({"voi": round(split + merge, 4), "voi_split": round(split, 4),
                    "voi_merge": round(merge, 4),
                    "arand": round(adapted_rand_error(table), 4)})
    return out


def one_block_voi(prediction: str, blockwise: list[str], seed_distance: int) -> list[float]:
    """VOI (all voxels, 0 a label) between each blockwise output and one block."""
    from funlib.persistence import Array

    from dacapo.experiments.tasks.post_processors import AgglomerationPostProcessor
    from dacapo.io.arrays import open_array
    from dacapo.ops.instance_metrics import contingency_table, variation_of_information

    pred = open_array(prediction, "prediction")
    data = pred[pred.roi]
    post = AgglomerationPostProcessor(OFFSETS, thresholds=THRESHOLDS, seed_distance=seed_distance)
    post.set_prediction(Array(data, offset=pred.roi.offset, voxel_size=VOXEL))
    del data
    vois = []
    with tempfile.TemporaryDirectory(dir=Path(prediction).parent.parent) as tmp:
        for p, path in zip(post.enumerate_parameters(), blockwise):
            one = post.process(p, Path(tmp) / "one.zarr" / str(p.id))
            a, b = open_array(path, "seg"), one[one.roi]
            split, merge = variation_of_information(
                contingency_table(a[a.roi].astype(np.uint64) + 1, b.astype(np.uint64) + 1))
            vois.append(round(split + merge, 4))
    return vois


# ----------------------------------------------------------------------------- driver


def _postgres():
    sys.path.insert(0, str(ROOT))
    from tests.segment.conftest import _pg_server  # the throwaway server the tests start

    server, reason = _pg_server()
    if server is None:
        print(f"PostgreSQL skipped: {reason}", flush=True)
    return server


@contextmanager
def databases(names: list[str]) -> Iterator[list[tuple[str, str | None]]]:
    """``(name, url)`` of each database asked for that can run (SQLite: url None;
    PostgreSQL: a throwaway server, stopped on leaving, skipped with the reason printed
    where it cannot start)."""
    server = _postgres() if "postgresql" in names else None
    try:
        yield [(db, server[0] if db == "postgresql" else None) for db in names
               if db != "postgresql" or server is not None]
    finally:
        if server is not None:
            server[1]()


def case_agglomeration(args) -> list[str]:
    shape = SIZES[args.size]
    voxels = int(np.prod(shape))
    base = args.dir / f"agglomeration_{args.size}"
    pred = base / "pred.zarr" / "affs"
    if not pred.exists():
        print(f"generating {shape} ({voxels / 1e6:.0f} Mvoxel) ...", flush=True)
        print(f"  generated in {generate(pred, shape, args.cell, args.noise):.1f} s", flush=True)
    rows = []
    with databases(args.db) as dbs:
        for db, url in dbs:
            for w in args.workers:
                name = f"{db}_{w}"
                out = base / "seg.zarr" / name
                shutil.rmtree(out, ignore_errors=True)
                shutil.rmtree(base / "logs" / name, ignore_errors=True)
                job = {"case": "agglomeration", "input": str(pred), "output": str(out),
                       "workers": w, "db_url": url,
                       "log_dir": str(base / "logs" / name), "block": args.block,
                       "seed_distance": args.seed_distance}
                before = load()
                r = measure(job)
                r.update(db=db, workers=w, load_before=before, load_after=load(),
                         mvoxel_per_s=round(voxels / 1e6 / r["total_s"], 2))
                if args.score and (db, w) == (args.db[0], args.workers[-1]):
                    r["scores"] = dict(zip(THRESHOLDS, score(
                        [f"{out}/{k}" for k in range(3)], args.cell)))
                    if args.one_block:
                        r["voi_vs_one_block"] = dict(zip(THRESHOLDS, one_block_voi(
                            str(pred), [f"{out}/{k}" for k in range(3)], args.seed_distance)))
                print(json.dumps(r), flush=True)
                rows.append(_row(args.size, voxels, r))
    return rows


def _row(size: str, voxels: int, r: dict) -> str:
    stages = ", ".join(f"{k} {v:.1f} s ({voxels / 1e6 / v:.1f} Mvox/s)"
                       for k, v in r["stages"].items() if v > 0)
    return (f"| agglomeration {size} | {r['db']} | {r['workers']} | {r['total_s']:.1f} | "
            f"**{r['mvoxel_per_s']:.2f}** | {r['peak_pss_process_mib']} | "
            f"{r['peak_pss_tree_mib']} | {r['db_rows']['nodes']} nodes, "
            f"{r['db_rows']['edges']} edges, {r['db_mib']} MiB | {stages} | "
            f"{r['load_before']} / {r['load_after']} |")


def case_cut(args) -> list[str]:
    base = args.dir / "cut"
    base.mkdir(parents=True, exist_ok=True)
    rows = []
    with databases(args.db) as dbs:
        for db, url in dbs:
            sqlite = str(base / "cut.db")
            fill, counts = _fill_cut_store(url, sqlite, args.edges, args.edges // 5)
            r = measure({"case": "cut", "db_url": url, "sqlite": sqlite, "log_dir": str(base)})
            r.update(db=db, fill_s=round(fill, 1), rows=counts, load=load())
            print(json.dumps(r), flush=True)
            rows.append(f"| global cut, {counts['edges']:.2e} edges, {counts['nodes']:.1e} "
                        f"nodes, 3 thresholds | {db} | {r['cut_s']:.1f} s | "
                        f"{r['peak_pss_process_mib']} MiB | filled in {fill:.0f} s | "
                        f"{r['load']} |")
            if url is None:
                os.remove(sqlite)
    return rows


CASES = {"agglomeration": case_agglomeration, "cut": case_cut}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", nargs="+", choices=sorted(CASES), default=sorted(CASES))
    parser.add_argument("--size", choices=sorted(SIZES), default="100M")
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--db", nargs="+", choices=["sqlite", "postgresql"],
                        default=["sqlite", "postgresql"])
    parser.add_argument("--block", type=int, default=128, help="voxels per axis")
    parser.add_argument("--cell", type=int, default=24, help="Voronoi grid spacing (voxels)")
    parser.add_argument("--noise", type=float, default=0.15)
    parser.add_argument("--seed-distance", type=int, default=8)
    parser.add_argument("--edges", type=int, default=10_000_000)
    parser.add_argument("--no-score", dest="score", action="store_false")
    parser.add_argument("--one-block", action="store_true",
                        help="VOI between blockwise and one block (whole volume in memory)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "dacapo_seg")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for case in args.case:
            rows += CASES[case](args)
    finally:
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)
    print(f"\n{os.cpu_count()} CPUs; {load()}")
    print("| case | db | workers | s | Mvoxel/s | peak PSS largest process MiB | peak PSS "
          "tree MiB | database | stages | load before / after |")
    for row in rows:
        print(row)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "_job":
        job = json.loads(sys.argv[2])
        run = {"agglomeration": _agglomeration_job, "cut": _cut_job}[job["case"]]
        print(json.dumps(run(job)), flush=True)
    else:
        main()
