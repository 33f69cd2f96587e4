"""Load figures of the distance-instances post-processor: a large distance volume, blockwise.

The input: a synthetic inner-distance prediction with known objects, one float32 channel
(default 1024³ = 1.07 Gvoxel, 4.3 GB uncompressed), generated blockwise on disk (64³
chunks, so its creation is bounded in memory too) from one formula of the world
coordinates: the warped touching boxes of `bench_load._cells` (~20 × 24 × 24 voxels,
~77 000 cells in 1024³), ``f = tanh(d / 4) + 0.05 sin(1.3z + 0.7y + 1.9x)`` with ``d`` the
distance (voxels, per axis in the warped frame) to the nearest face of its box.

The job: `DistanceInstancesPostProcessor` (threshold 0.2, seed threshold 0.7, two-threshold
seeds, ``min_size`` 0; context ``--context`` voxels, blocks ``--block`` voxels) through
`dacapo.segment.stitching.run_stitched` (fragments, stitching, relabelling), with 1 and 2
workers, each run in its own process (`measure`: peak summed PSS and RSS of the process
tree sampled from ``/proc`` every 0.2 s, and the largest single process' PSS and RSS; CPU
seconds of the job and its workers, so Mvoxel per CPU-second, which a loaded machine
changes less than the wall time).

The known objects: the cells where ``f > threshold`` (the mask; 0 elsewhere). Scored
block by block (`dacapo.ops.instance_metrics.label_pairs`, tables added up): VOI split +
merge (bits) and adapted Rand error of the segmentation against them.

Goals (issue 25): ≥ 5 Mvoxel/s with 2 workers; peak memory per process ≤ 1.5 GiB and
flat from 100 Mvoxel to 1 Gvoxel. ``--profile`` instead profiles the three passes on one
small volume in this process (cProfile, top functions by own time).

    .venv/bin/python benchmarks/bench_distance_instances_load.py --shapes 464 464 464 1024 1024 1024
    .venv/bin/python benchmarks/bench_distance_instances_load.py --shapes 128 256 256 --profile
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from _harness import load, timed
from bench_load import VOXEL, Sampler, _cells, _grid, _kb, _tree, generate
from funlib.geometry import Coordinate, Roi

from dacapo.experiments.tasks.post_processors import DistanceInstancesPostProcessor
from dacapo.io.ome_write import open_ds

THRESHOLD, SEED_THRESHOLD = 0.2, 0.7


def _face_distance(u: np.ndarray, size: float) -> np.ndarray:
    """Voxels from ``u`` (warped coordinate) to the nearest face of its cell of ``size``."""
    frac = u / size - np.floor(u / size)
    return np.minimum(frac, 1.0 - frac) * size


def distance_field(z, y, x) -> np.ndarray:
    """The synthetic prediction (module docstring) at voxel coordinates z, y, x."""
    dz = _face_distance(z + 3 * np.sin(y / 17.0), 20.0)
    dy = _face_distance(y + 3 * np.sin(x / 13.0), 24.0)
    dx = _face_distance(x + 3 * np.sin(z / 11.0), 24.0)
    d = np.minimum(np.minimum(dz, dy), dx)
    return np.tanh(d / 4.0) + 0.05 * np.sin(1.3 * z + 0.7 * y + 1.9 * x)


def distance_block(block) -> np.ndarray:
    """The prediction of one block, one channel."""
    return distance_field(*_grid(block)).astype(np.float32)[None]


def known_objects(roi: Roi, voxel_size: Coordinate) -> np.ndarray:
    """The known objects in ``roi``: cell ids (from 1) where ``f > THRESHOLD``, else 0."""
    z, y, x = _grid(SimpleNamespace(write_roi=roi, voxel_size=voxel_size))
    f = distance_field(z, y, x).astype(np.float32)
    cells = _cells(z, y, x) + (1_000_003 + 1009 + 2)  # warped indices are >= -1: ids >= 1
    return np.where(f > THRESHOLD, np.broadcast_to(cells, f.shape), 0).astype(np.int64)


def score(path: Path, step: int = 32) -> dict:
    """VOI and adapted Rand error of the segmentation at ``path`` against `known_objects`,
    counted in slabs of ``step`` voxels along z (tables added up)."""
    from dacapo.ops.instance_metrics import (
        adapted_rand_error,
        label_pairs,
        merge_label_pairs,
        table_from_pairs,
        variation_of_information,
    )

    seg = open_ds(str(path))
    vs = seg.voxel_size
    shape = seg.roi.shape / vs
    parts = []
    for z in range(0, shape[0], step):
        slab = Coordinate(min(step, shape[0] - z), shape[1], shape[2])
        roi = Roi(seg.roi.offset + Coordinate(z, 0, 0) * vs, slab * vs)
        parts.append(label_pairs(np.asarray(seg[roi]), known_objects(roi, vs)))
        if len(parts) > 8:
            parts = [merge_label_pairs(parts)]
    table = table_from_pairs(merge_label_pairs(parts))
    split, merge = variation_of_information(table)
    return {"voi_split": round(split, 4), "voi_merge": round(merge, 4),
            "arand": round(adapted_rand_error(table), 4),
            "objects": int(len(table.truth_sizes) - 1), "segments": int(len(table.seg_sizes) - 1)}


def run_job(prediction: str, output: str, workers: int, context: int, block: int,
            log_dir: str) -> None:
    """The measured job: the post-processor over the whole prediction."""
    from dacapo.blockwise import BlockwiseOptions
    from dacapo.experiments.tasks.post_processors import DistanceInstancesPostProcessor
    from dacapo.experiments.tasks.post_processors.distance_instances_post_processor_parameters import (  # noqa: E501
        DistanceInstancesPostProcessorParameters,
    )

    post = DistanceInstancesPostProcessor([THRESHOLD], [SEED_THRESHOLD],
                                          context=context * VOXEL[0])
    post.set_prediction(prediction)
    params = DistanceInstancesPostProcessorParameters(
        id=0, threshold=THRESHOLD, seed_threshold=SEED_THRESHOLD, h=None, min_seed_distance=0.0,
        min_size=0)
    post.process(params, output, BlockwiseOptions(num_workers=workers, log_dir=log_dir,
                                                  progress=False),
                 block_size=Coordinate((block,) * 3) * VOXEL)


class ProcessSampler(Sampler):
    """`bench_load.Sampler` that also keeps the largest single process' PSS (MiB)."""

    peak_single_pss = 0.0

    def run(self) -> None:
        while not self._halt.is_set():
            pids = _tree(self.pid)
            rss = [_kb(f"/proc/{p}/status", "VmRSS:") / 1024 for p in pids]
            pss = [_kb(f"/proc/{p}/smaps_rollup", "Pss:") / 1024 for p in pids]
            self.peak_rss = max(self.peak_rss, sum(rss))
            self.peak_pss = max(self.peak_pss, sum(pss))
            self.peak_single = max(self.peak_single, max(rss, default=0))
            self.peak_single_pss = max(self.peak_single_pss, max(pss, default=0))
            self.max_procs = max(self.max_procs, len([r for r in rss if r]))
            self._halt.wait(self.interval)


def measure(job: dict) -> dict:
    """Run ``job`` in a fresh process of this script; its result plus the peak memory of
    its process tree (`bench_load.Sampler`) and of its largest process (PSS)."""
    proc = subprocess.Popen([sys.executable, __file__, "_job", json.dumps(job)],
                            stdout=subprocess.PIPE, text=True)
    sampler = ProcessSampler(proc.pid)
    sampler.start()
    out, _ = proc.communicate()
    sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"job {job} failed with exit code {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(peak_rss_mib=round(sampler.peak_rss), peak_pss_mib=round(sampler.peak_pss),
                  peak_single_rss_mib=round(sampler.peak_single), processes=sampler.max_procs,
                  peak_single_pss_mib=round(sampler.peak_single_pss))
    return result


def _job(job: dict) -> dict:
    import logging

    logging.basicConfig(level=logging.WARNING)
    out = Path(job["output"])
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(job["log_dir"], ignore_errors=True)
    seconds, _ = timed(run_job, job["input"], str(out), job["workers"], job["context"],
                       job["block"], job["log_dir"])
    arr = open_ds(str(out))
    voxels = int(np.prod(arr.roi.shape / arr.voxel_size))
    cpu = sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
              for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return {"kind": "distance_instances", "workers": job["workers"], "seconds": round(seconds, 1),
            "mvoxels": round(voxels / 1e6, 1), "mvoxel_per_s": round(voxels / 1e6 / seconds, 2),
            "cpu_s": round(cpu, 1), "mvoxel_per_cpu_s": round(voxels / 1e6 / cpu, 2)}


def profile(pred: Path, folder: Path, context: int, block: int) -> None:
    """cProfile of the job in this process (0 workers): the top functions by own time."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    seconds, _ = timed(profiler.runcall, run_job, str(pred), str(folder / "profile.zarr" / "seg"),
                       0, context, block, str(folder / "logs" / "profile"))
    print(f"profile: {seconds:.1f} s in this process ({load()})")
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(18)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "dacapo_distance_load")
    parser.add_argument("--shapes", nargs="+", type=int, default=[464, 464, 464, 1024, 1024, 1024],
                        help="volumes to run, 3 numbers each (voxels z y x)")
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--context", type=int, default=16, help="voxels per side")
    parser.add_argument("--block", type=int, default=DistanceInstancesPostProcessor.DEFAULT_BLOCK_VOXELS,
                        help="voxels per axis (default: the post-processor's)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the generated volumes")
    args = parser.parse_args()
    if len(args.shapes) % 3:
        parser.error("--shapes takes 3 numbers per volume")
    shapes = [tuple(args.shapes[i:i + 3]) for i in range(0, len(args.shapes), 3)]
    args.dir.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for shape in shapes:
            name = "x".join(map(str, shape))
            pred = args.dir / f"{name}.zarr" / "prediction"
            if not pred.exists():
                generate(distance_block, pred, shape, 1, np.float32)
            if args.profile:
                profile(pred, args.dir, args.context, args.block)
                continue
            for w in args.workers:
                out = args.dir / f"{name}.zarr" / f"seg_{w}"
                r = measure({"kind": "distance_instances", "workers": w, "input": str(pred),
                             "output": str(out), "context": args.context, "block": args.block,
                             "log_dir": str(args.dir / "logs" / f"{name}_{w}")})
                r.update(score(out), load=load())
                print("  ", json.dumps(r), flush=True)
                rows.append(r)
                shutil.rmtree(out, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)
    print(f"\n{os.cpu_count()} CPUs; blocks {args.block}³, context {args.context} voxels. Peak "
          "memory: summed over the job's process tree; largest process RSS.")
    print("| case | Mvoxel | workers | s | Mvoxel/s | Mvoxel per CPU-s | peak PSS MiB: tree / "
          "largest process | VOI split / merge | ARAND | objects / segments | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| distance instances | {r['mvoxels']:.0f} | {r['workers']} | {r['seconds']:.1f} "
              f"| {r['mvoxel_per_s']:.2f} | {r['mvoxel_per_cpu_s']:.2f} "
              f"| {r['peak_pss_mib']} / {r['peak_single_pss_mib']} "
              f"| {r['voi_split']:.3f} / {r['voi_merge']:.3f} | {r['arand']:.4f} "
              f"| {r['objects']} / {r['segments']} | {r['load']} |")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "_job":
        print(json.dumps(_job(json.loads(sys.argv[2]))), flush=True)
    else:
        main()
