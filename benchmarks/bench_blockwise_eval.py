"""Blockwise evaluation (`dacapo.experiments.tasks.evaluators.evaluate_blockwise`): peak memory flat in
the volume size, against the in-memory evaluators, at 1x and 8x the volume.

Each measurement runs in a fresh subprocess (one daisy worker = in-process blocks), which
reports its peak RSS (VmHWM, reset after the imports) minus its RSS after the imports
("base"), and the wall time; the blockwise scores
are checked equal to the in-memory ones (all metrics; binary with the default context
max(clip, tol) = 40 nm, more than every false distance here, so the unclipped metrics are
exact too).

Volumes (zarr, chunks 64³, written slab by slab): instance labels = a grid of cells of
12 × 20 × 20 voxels with random ids ≥ 100000 and 0 on the cell faces; segmentation = the
same shifted by one voxel along z, 5 % of the cells merged with a neighbour and 1 % of the
voxels 0. Binary: a ball in every third cell (truth) vs a ball one voxel larger, shifted one
voxel along z (test); voxel 8 × 4 × 4 nm, clip 40 nm, tolerance 8 nm.
Base volume 64 × 256 × 256 (4.2 Mvoxel), 8x = 128 × 512 × 512 (33.6 Mvoxel); blocks of 64³.

Run: ``.venv/bin/python benchmarks/bench_blockwise_eval.py [--base 64 256 256]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
from _harness import pin_threads, timed

CELL = np.array([12, 20, 20])
VOXEL = (8, 4, 4)
CLIP, TOL = 40.0, 8.0
BLOCK = 64


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux: "5" to /proc/self/clear_refs). ``ru_maxrss``
    is no use here: it keeps the parent's peak across fork and exec."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _cells(z0: int, z1: int, shape) -> tuple[np.ndarray, np.ndarray]:
    """(cell index, position inside the cell) of every voxel of slab z0:z1."""
    grid = np.stack(np.meshgrid(np.arange(z0, z1), np.arange(shape[1]), np.arange(shape[2]),
                                indexing="ij"), -1)
    cell = grid // CELL
    grid_cells = -(-np.asarray(shape) // CELL)
    index = np.ravel_multi_index(tuple(np.moveaxis(cell, -1, 0)), grid_cells, mode="wrap")
    return index, grid % CELL


def make_volumes(root: str, shape, seed: int = 0) -> dict[str, str]:
    """Write the instance and binary volumes (see the module docstring), slab by slab."""
    from funlib.geometry import Coordinate
    from funlib.persistence import prepare_ds

    rng = np.random.default_rng(seed)
    num_cells = int(np.prod(-(-np.asarray(shape) // CELL)))
    ids = (rng.choice(2**40, num_cells, replace=False) + 100000).astype(np.uint64)
    merged = ids.copy()
    pick = rng.random(num_cells - 1) < 0.05
    merged[1:][pick] = ids[:-1][pick]  # a cell takes its neighbour's id
    balls = rng.random(num_cells) < 1 / 3
    paths = {}
    arrays = {}
    for name, dtype in (("seg", np.uint64), ("gt", np.uint64), ("test", np.uint8),
                        ("truth", np.uint8)):
        paths[name] = f"{root}/{name}"
        arrays[name] = prepare_ds(paths[name], shape=tuple(shape), offset=(0, 0, 0),
                                  voxel_size=Coordinate(VOXEL), dtype=dtype,
                                  chunk_shape=(BLOCK,) * 3)
    centre = (CELL - 1) / 2
    for z0 in range(0, shape[0], BLOCK):
        z1 = min(z0 + BLOCK, shape[0])
        index, pos = _cells(z0, z1, shape)
        face = (pos == 0).any(-1)
        gt = np.where(face, 0, ids[index])
        r = np.linalg.norm((pos - centre) * np.asarray(VOXEL), axis=-1)
        truth = (balls[index] & (r < 30)).astype(np.uint8)
        index, pos = _cells(z0 + 1, z1 + 1, shape)  # shifted by one voxel along z
        seg = np.where((pos == 0).any(-1), 0, merged[index])
        seg[rng.random(seg.shape) < 0.01] = 0
        r = np.linalg.norm((pos - centre) * np.asarray(VOXEL), axis=-1)
        test = (balls[index] & (r < 34)).astype(np.uint8)
        for name, data in (("seg", seg), ("gt", gt), ("test", test), ("truth", truth)):
            arrays[name]._source_data[z0:z1] = data
    return paths


def child(kind: str, mode: str, seg: str, gt: str) -> None:
    """One measurement in this (fresh) process; prints a JSON line."""
    from funlib.geometry import Coordinate

    from dacapo.experiments.tasks.evaluators import (
        BinarySegmentationEvaluator,
        InstanceEvaluator,
        evaluate_blockwise,
    )

    if kind == "instance":
        evaluator = InstanceEvaluator()
        context = None
    else:
        evaluator = BinarySegmentationEvaluator(CLIP, TOL, channels=["fg"])
        context = None  # the default, clip = 40 nm > every false distance here (~12 nm)
    block_size = Coordinate(BLOCK, BLOCK, BLOCK) * Coordinate(VOXEL)
    _reset_peak()
    baseline = _status_mb("VmRSS")
    if mode == "in-memory":
        seconds, scores = timed(lambda: evaluator.evaluate(seg, gt))
    else:
        seconds, scores = timed(lambda: evaluate_blockwise(evaluator, seg, gt,
                                                           block_size=block_size, context=context))
    values = {c: float(getattr(scores, c)) for c in scores.criteria}
    print(json.dumps({"baseline": baseline, "peak": _status_mb("VmHWM"), "seconds": seconds,
                      "values": values}))


def measure(kind: str, mode: str, paths: dict[str, str]) -> dict:
    seg, gt = (paths["seg"], paths["gt"]) if kind == "instance" else (paths["test"], paths["truth"])
    out = subprocess.run([sys.executable, __file__, "--child", kind, mode, seg, gt],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _same(a: dict, b: dict) -> bool:
    return all((math.isnan(a[k]) and math.isnan(b[k])) or math.isclose(a[k], b[k], rel_tol=1e-6,
               abs_tol=1e-9) for k in b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, nargs=3, default=[64, 256, 256])
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory(prefix="bench_blockwise_eval_") as tmp:
        rows = []
        for scale in (1, 2):
            shape = [s * scale for s in args.base]
            paths = make_volumes(f"{tmp}/v{scale}.zarr", shape)
            mvox = np.prod(shape) / 1e6
            for kind in ("instance", "binary"):
                got = {mode: measure(kind, mode, paths) for mode in ("blockwise", "in-memory")}
                same = _same(got["blockwise"]["values"], got["in-memory"]["values"])
                for mode, r in got.items():
                    rows.append((kind, f"{scale ** 3}x", f"{mvox:.1f}", mode, r["baseline"],
                                 r["peak"] - r["baseline"], r["seconds"], same))
        print(f"{'metrics':9s} {'size':4s} {'Mvoxel':>7s} {'mode':10s} {'base MiB':>9s} "
              f"{'peak - base MiB':>16s} {'seconds':>8s}  blockwise == in-memory")
        for kind, size, mvox, mode, base, mem, sec, same in rows:
            print(f"{kind:9s} {size:4s} {mvox:>7s} {mode:10s} {base:9.0f} {mem:16.0f} {sec:8.2f}"
                  f"  {same}")
    print(f"blocks {BLOCK}^3, 1 worker (in-process); load average {os.getloadavg()[0]:.2f} "
          f"(1 min, {os.cpu_count()} cores)")


if __name__ == "__main__":
    pin_threads()
    main()
