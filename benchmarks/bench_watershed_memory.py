"""Peak memory of the blockwise watershed post-processor: a volume and one 4× larger, same
block size. Goal: peak(large) / peak(small) ≤ 1.2.

Prediction: 6 affinity channels (offsets (1,0,0),(0,1,0),(0,0,1),(2,0,0),(0,4,0),(0,0,4)),
float32 zarr, made from Voronoi cells + noise; small 48×96×96 (0.44 Mvoxel, 3×3×3 blocks),
large 96×192×96 (1.77 Mvoxel, 6×6×3 blocks). Blocks 16×32×32 voxels (default context
2 × the largest offset: 4×8×8), 2 workers. Both volumes have interior blocks (read ROI not
clipped by the volume), so the largest block is the same.

Each measurement runs in a fresh Python process (the prediction is written by yet another
process beforehand). This script samples the resident memory of that process and all its
descendants (daisy's worker processes) every 10 ms from ``/proc`` and reports the peak of
the sum (``VmRSS``, shared pages counted per process: an upper bound) and of the private
anonymous memory (``RssAnon``). (``getrusage(RUSAGE_CHILDREN)`` is no use here: it reports
the size of the driver at the moment it forks a worker, not the worker's own peak.) The
naive reference is the same post-processor on an in-memory array (one block for the whole
volume), measured the same way.

Run: ``.venv/bin/python benchmarks/bench_watershed_memory.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import timed

OFFSETS = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (2, 0, 0), (0, 4, 0), (0, 0, 4)]
VOXEL = (8, 4, 4)
SIZES = {"small": (48, 96, 96), "large": (96, 192, 96)}
BLOCK = (16, 32, 32)


def write_prediction(path: str, shape: tuple[int, ...]) -> None:
    """Noisy affinities of Voronoi cells (one-voxel gaps), written chunk by chunk."""
    import numpy as np
    from funlib.persistence import prepare_ds
    from scipy import ndimage

    from dacapo.ops.affinities import affinities

    rng = np.random.default_rng(0)
    num = int(np.prod(shape) / 20000)
    seeds = np.zeros(shape, np.uint32)
    points = np.stack([rng.integers(0, s, num) for s in shape], axis=1)
    seeds[tuple(points.T)] = np.arange(1, num + 1)
    _, idx = ndimage.distance_transform_edt(seeds == 0, sampling=VOXEL, return_indices=True)
    labels = seeds[tuple(idx)]
    del idx
    affs = affinities(labels, OFFSETS).astype(np.float32)
    affs = np.clip(0.1 + 0.8 * affs + rng.normal(0, 0.1, affs.shape).astype(np.float32), 0, 1)
    ds = prepare_ds(path, shape=affs.shape, offset=(0, 0, 0), voxel_size=VOXEL,
                    axis_names=["c^", "z", "y", "x"], dtype=np.float32,
                    chunk_shape=(len(OFFSETS),) + BLOCK, mode="w")
    ds[ds.roi] = affs


def run(prediction: str, output: str, mode: str) -> dict:
    """Post-process one bias; returns timings and peak RSS (MiB)."""
    from funlib.geometry import Coordinate
    from funlib.persistence import open_ds

    from dacapo.blockwise import BlockwiseOptions
    from dacapo.experiments.tasks.post_processors import (
        WatershedPostProcessor,
        WatershedPostProcessorParameters,
    )

    post = WatershedPostProcessor(offsets=OFFSETS, biases=[0.5])
    source = open_ds(prediction, mode="r")
    voxels = int(__import__("numpy").prod(source.shape[1:]))
    if mode == "naive":
        source = source.to_ndarray(source.roi)  # the whole volume in memory, one block
        from funlib.persistence import Array

        source = Array(source, offset=(0, 0, 0), voxel_size=VOXEL,
                       axis_names=["c^", "z", "y", "x"])
    post.set_prediction(source if mode == "naive" else prediction)
    seconds, _ = timed(post.process, WatershedPostProcessorParameters(0, bias=0.5), output,
                       BlockwiseOptions(num_workers=2),
                       block_size=Coordinate(BLOCK) * Coordinate(VOXEL))
    return {"seconds": seconds, "voxels": voxels}


def _tree_rss(root: int) -> tuple[float, float, int]:
    """(VmRSS, RssAnon) in MiB summed over ``root`` and its descendants, and their count."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    rss = anon = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                    elif line.startswith("RssAnon:"):
                        anon += int(line.split()[1])
        except OSError:
            pass
    return rss / 1024, anon / 1024, len(tree)


def measure(command: list[str], env: dict) -> dict:
    """Run ``command``; peak tree memory sampled every 10 ms, and its JSON output."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    peak_rss = peak_anon = 0.0
    most = 0
    while proc.poll() is None:
        rss, anon, count = _tree_rss(proc.pid)
        peak_rss, peak_anon, most = max(peak_rss, rss), max(peak_anon, anon), max(most, count)
        time.sleep(0.01)
    out, _ = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{command} failed with {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(rss_mib=peak_rss, anon_mib=peak_anon, processes=most)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", nargs=2, metavar=("PATH", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--run", nargs=3, metavar=("PRED", "OUT", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()
    if args.write:
        write_prediction(args.write[0], SIZES[args.write[1]])
        return
    if args.run:
        print(json.dumps(run(*args.run)))
        return

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_ws_") as tmp:
        for size in SIZES:
            pred = f"{tmp}/{size}.zarr/affs"
            subprocess.run([sys.executable, __file__, "--write", pred, size], env=env,
                           check=True)
            for mode in ["blockwise"] + ([] if args.skip_naive else ["naive"]):
                out = f"{tmp}/{size}.zarr/seg_{mode}"
                results[size, mode] = measure(
                    [sys.executable, __file__, "--run", pred, out, mode], env
                )
    print(f"blocks {BLOCK} voxels, context 4x8x8, 2 workers, voxel {VOXEL} nm, "
          f"{len(OFFSETS)} float32 affinity channels, bias 0.5")
    for (size, mode), r in results.items():
        print(f"{mode:9s} {size:5s} {SIZES[size]}: {r['seconds']:6.1f} s "
              f"{r['voxels'] / 1e6 / r['seconds']:6.2f} Mvoxel/s  peak of the process tree "
              f"({r['processes']} processes): RSS {r['rss_mib']:6.0f} MiB, anonymous "
              f"{r['anon_mib']:6.0f} MiB")
    small, large = results["small", "blockwise"], results["large", "blockwise"]
    print(f"blockwise peak ratio large/small (4x the voxels): RSS "
          f"{large['rss_mib'] / small['rss_mib']:.2f}, anonymous "
          f"{large['anon_mib'] / small['anon_mib']:.2f} (goal <= 1.2)")
    if not args.skip_naive:
        naive_s, naive_l = results["small", "naive"], results["large", "naive"]
        print(f"naive (one in-memory block) peak ratio large/small: RSS "
              f"{naive_l['rss_mib'] / naive_s['rss_mib']:.2f}; on the large volume "
              f"naive / blockwise RSS = {naive_l['rss_mib'] / large['rss_mib']:.2f}")

if __name__ == "__main__":
    main()
