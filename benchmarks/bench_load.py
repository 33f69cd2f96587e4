"""Load figures: blockwise post-processing of a large prediction and prediction of a large raw.

Measures, for 1 and 2 workers, wall time, Mvoxel/s and peak memory of

- ``threshold``: `ThresholdPostProcessor` on a float32 distance-like prediction
  (default 1024³ = 1.07 Gvoxel, 4.3 GB uncompressed);
- ``watershed``: blockwise `WatershedPostProcessor` (mutex watershed, stitching, relabel) on
  3 float32 affinity channels of synthetic touching cells (default 1024³ = 1.07 Gvoxel,
  12.9 GB uncompressed, 4096 blocks of 64³; a smaller ``--watershed-shape`` prints the
  linear extrapolation to 1024³ next to its figures);
- naive references (``threshold``, ``watershed``): the whole prediction read into one
  process, one numpy / `dacapo.ops.watershed.segment` call, the whole result written; run
  only where that fits in memory (the 1 Gvoxel watershed does not: ~280 GiB). Each row's
  note gives the blockwise job's speed and peak memory relative to it;
- ``predict``: `dacapo.pipeline.predict.predict` of a uint8 raw (default 416x512x512 = 109 Mvoxel;
  the prediction, the raw less the valid UNet's context, is 412x496x496 = 101 Mvoxel)
  with a small valid-padded 3D UNet (untrained weights; speed does not depend on them).

Each measured job runs in its own process; a sampler reads ``/proc`` every 0.2 s and
reports the peak over time of the summed RSS and PSS (proportional set size: shared pages
split between processes, so the sum is not inflated by shared libraries) of the job and all
its descendants (daisy workers included), and the largest single process RSS.

Inputs are generated blockwise (so their creation is bounded in memory too) under ``--dir``
(default ``dacapo_load`` in the system's temporary folder) and deleted at the end unless
``--keep``.

    .venv/bin/python benchmarks/bench_load.py                       # everything, defaults
    .venv/bin/python benchmarks/bench_load.py --only threshold --threshold-shape 256 512 512
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from _harness import timed
from funlib.geometry import Coordinate, Roi

from dacapo.io.ome_write import open_ds  # plain zarr arrays and OME-NGFF outputs

VOXEL = Coordinate(8, 8, 8)
BLOCK = 64  # voxels per axis, the post-processors' default block size
OFFSETS = [(1, 0, 0), (0, 1, 0), (0, 0, 1)]


# --------------------------------------------------------------------------
# synthetic inputs (one formula of the world coordinates: blocks agree at their faces)
# --------------------------------------------------------------------------


def _grid(block) -> list[np.ndarray]:
    roi = block.write_roi
    axes = [np.arange(b, e, v, dtype=np.float32) / v for b, e, v in
            zip(roi.begin, roi.end, block.voxel_size)]
    return np.meshgrid(*axes, indexing="ij", sparse=True)


def _cells(z, y, x) -> np.ndarray:
    """Integer cell ids of warped boxes (~24 voxels wide), touching each other."""
    zz = np.floor((z + 3 * np.sin(y / 17.0)) / 20.0)
    yy = np.floor((y + 3 * np.sin(x / 13.0)) / 24.0)
    xx = np.floor((x + 3 * np.sin(z / 11.0)) / 24.0)
    # in int64: the coordinates may be float32, whose products above 2**24 collide
    return zz.astype(np.int64) * 1_000_003 + yy.astype(np.int64) * 1009 + xx.astype(np.int64)


def distance_block(block) -> np.ndarray:
    """tanh-distance-like smooth field in [-1, 1], one channel."""
    z, y, x = _grid(block)
    field = np.sin(z / 9.0) * np.sin(y / 11.0) * np.sin(x / 7.0) + 0.1 * np.cos((x + y) / 5.0)
    return np.tanh(2 * field).astype(np.float32)[None]


def affinity_block(block) -> np.ndarray:
    """Affinities of `_cells` for `OFFSETS` (1 inside a cell, 0 across a face) with noise."""
    z, y, x = _grid(block)
    shape = tuple(block.write_roi.shape / block.voxel_size)
    ids = np.broadcast_to(_cells(z, y, x), shape)
    out = np.empty((len(OFFSETS), *shape), np.float32)
    coords = np.broadcast_arrays(z, y, x)
    for c, o in enumerate(OFFSETS):
        shifted = _cells(*(a + d for a, d in zip(coords, o)))
        noise = 0.15 * np.sin(coords[0] * 1.3 + coords[1] * 0.7 + coords[2] * 1.9 + c)
        out[c] = np.clip((ids == shifted).astype(np.float32) * 0.9 + 0.05 + noise, 0, 1)
    return out


def raw_block(block) -> np.ndarray:
    """uint8 textured raw."""
    z, y, x = _grid(block)
    ids = _cells(z, y, x)
    value = 100 + (ids % 7) * 15 + 20 * np.sin(x / 3.0) * np.cos(y / 4.0)
    return np.clip(value, 0, 255).astype(np.uint8)


def generate(func, path: Path, shape, channels: int | None, dtype, workers: int = 2) -> None:
    """Write ``func`` blockwise into a new zarr array (chunks = 64³ blocks)."""
    from dacapo.blockwise import BlockwiseOptions, run_blockwise
    from dacapo.io.arrays import prepare_zarr

    roi = Roi((0, 0, 0), Coordinate(shape) * VOXEL)
    block = Coordinate((BLOCK,) * 3) * VOXEL
    prepare_zarr(path, roi, VOXEL, dtype, num_channels=channels, write_size=block,
                   axis_names=["z", "y", "x"])
    seconds, _ = timed(run_blockwise, _no_input(func), {}, path, block,
                       options=BlockwiseOptions(num_workers=workers, progress=False,
                                                log_dir=path.parent.parent / "logs" / path.name))
    print(f"  generated {path} {tuple(shape)} in {seconds:.1f} s", flush=True)


def _no_input(func):
    return functools.partial(_call, func)


def _call(func, block):
    return func(block)


# --------------------------------------------------------------------------
# memory sampling of a process tree
# --------------------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def _tree(pid: int) -> list[int]:
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _kb(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    """Peak summed RSS/PSS (MiB) of a process tree, sampled every ``interval`` s."""

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_rss = self.peak_pss = self.peak_single = 0.0
        self.max_procs = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            pids = _tree(self.pid)
            rss = [_kb(f"/proc/{p}/status", "VmRSS:") for p in pids]
            pss = sum(_kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids)
            self.peak_rss = max(self.peak_rss, sum(rss) / 1024)
            self.peak_pss = max(self.peak_pss, pss / 1024)
            self.peak_single = max(self.peak_single, max(rss, default=0) / 1024)
            self.max_procs = max(self.max_procs, len([r for r in rss if r]))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def measure(job: dict) -> dict:
    """Run ``job`` in a fresh process; its result plus the peak memory of its tree."""
    proc = subprocess.Popen([sys.executable, __file__, "_job", json.dumps(job)],
                            stdout=subprocess.PIPE, text=True)
    sampler = Sampler(proc.pid)
    sampler.start()
    out, _ = proc.communicate()
    sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"job {job} failed with exit code {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(peak_rss_mib=round(sampler.peak_rss), peak_pss_mib=round(sampler.peak_pss),
                  peak_single_rss_mib=round(sampler.peak_single), processes=sampler.max_procs)
    return result


# --------------------------------------------------------------------------
# jobs (run in the measured child process)
# --------------------------------------------------------------------------


def _job(job: dict) -> dict:
    import logging

    logging.basicConfig(level=logging.WARNING)
    kind, workers = job["kind"], job["workers"]
    out = Path(job["output"])
    if out.exists():
        shutil.rmtree(out)
    seconds, _ = timed(_run, job, kind, workers, out)
    arr = open_ds(str(out))
    voxels = int(np.prod(arr.roi.shape / arr.voxel_size))
    summary = {"kind": kind, "workers": workers, "seconds": round(seconds, 2),
               "mvoxels": round(voxels / 1e6, 2), "mvoxel_per_s": round(voxels / 1e6 / seconds, 2)}
    if kind != "predict":  # a cheap sanity check that something was segmented
        sample = arr[Roi(arr.roi.offset, Coordinate((BLOCK,) * 3) * arr.voxel_size)]
        summary["sample_labels"] = int(len(np.unique(sample)))
    return summary


def _run(job: dict, kind: str, workers: int, out: Path) -> None:
    """The measured job itself."""
    from dacapo.blockwise import BlockwiseOptions

    if kind == "threshold":
        from dacapo.experiments.tasks.post_processors import ThresholdPostProcessor
        from dacapo.experiments.tasks.post_processors.threshold_post_processor_parameters import (
            ThresholdPostProcessorParameters,
        )

        post = ThresholdPostProcessor(thresholds=[0.0])
        post.set_prediction(job["input"])
        post.process(ThresholdPostProcessorParameters(id=0, threshold=0.0), str(out),
                     BlockwiseOptions(num_workers=workers, log_dir=job["log_dir"]))
    elif kind == "watershed":
        from dacapo.experiments.tasks.post_processors import WatershedPostProcessor
        from dacapo.experiments.tasks.post_processors.watershed_post_processor_parameters import (
            WatershedPostProcessorParameters,
        )

        post = WatershedPostProcessor(OFFSETS, biases=[0.5])
        post.set_prediction(job["input"])
        post.process(WatershedPostProcessorParameters(id=0, bias=0.5, min_size=0), str(out),
                     BlockwiseOptions(num_workers=workers))
    elif kind in ("threshold_naive", "watershed_naive"):
        _naive(kind, job["input"], out)
    elif kind == "predict":
        from dacapo.io.config_yaml import from_yaml
        from dacapo.pipeline.predict import predict
        from dacapo.pipeline.predict_options import PredictOptions

        rc = from_yaml(Path(job["run_config"]))
        predict(rc, job["checkpoint"], job["input"], out,
                PredictOptions(num_workers=workers, log_dir=job["log_dir"], progress=False))
    else:
        raise ValueError(f"unknown job kind {kind!r}")


def _naive(kind: str, source: str, out: Path) -> None:
    """The naive reference: the whole array in memory, one call, one process."""
    from funlib.persistence import prepare_ds

    from dacapo.ops.watershed import segment

    pred = open_ds(source)
    data = np.asarray(pred._source_data[...])
    if kind == "threshold_naive":
        result = (data > 0.0).astype(np.uint8)
    else:
        result = segment(data, OFFSETS, 0.5)
    del data
    arr = prepare_ds(str(out), result.shape, offset=pred.roi.offset, voxel_size=pred.voxel_size,
                     axis_names=(["c^"] if result.ndim == 4 else []) + ["z", "y", "x"],
                     dtype=result.dtype, chunk_shape=(1,) * (result.ndim - 3) + (BLOCK,) * 3,
                     mode="w")
    arr._source_data[...] = result


def naive_fits(kind: str, voxels: int) -> tuple[bool, str]:
    """Whether the naive in-memory reference fits in this machine's memory (with margin)."""
    # bytes per voxel: threshold float32 in + uint8 out; watershed measured 265 B/voxel
    # (mwatershed's edge list; 17.8 GB peak for 67 Mvoxel with 3 offsets)
    per_voxel = {"threshold": 4 + 1 + 1, "watershed": 280}[kind]
    need = voxels * per_voxel
    with open("/proc/meminfo") as f:
        free = int(next(line for line in f if line.startswith("MemAvailable")).split()[1]) * 1024
    return need < 0.85 * free, f"needs ~{need / 2**30:.0f} GiB in one process"


def stitch_check(seg) -> dict:
    """Is the segmentation a one-to-one relabelling of the synthetic cells in a 192³ window
    at the centre of the volume (it crosses 3 stitched block faces per axis)? Counts the
    distinct cells, segments and (cell, segment) pairs of the labelled voxels there:
    all equal = exact up to the unlabelled (0) voxels, whose number is reported."""
    size = Coordinate(min(3 * BLOCK, s) for s in seg.roi.shape / seg.voxel_size)
    centre = seg.roi.shape / seg.voxel_size / 2
    begin = Coordinate(max(0, int(c) - BLOCK - BLOCK // 2) for c in centre)
    roi = Roi(seg.roi.offset + begin * seg.voxel_size, size * seg.voxel_size)
    labels = seg.to_ndarray(roi)

    z, y, x = _grid(SimpleNamespace(write_roi=roi, voxel_size=seg.voxel_size))
    cells = np.broadcast_to(_cells(z, y, x), labels.shape)
    fg = labels != 0  # voxels that merged with nothing (all edges repulsive) are 0
    cell_ids, cell_idx = np.unique(cells[fg], return_inverse=True)
    seg_ids, seg_idx = np.unique(labels[fg], return_inverse=True)
    pairs = np.unique(cell_idx.astype(np.int64) * len(seg_ids) + seg_idx)
    return {"voxels": int(labels.size), "cells": int(len(cell_ids)),
            "segments": int(len(seg_ids)), "pairs": int(len(pairs)),
            "background_voxels": int(np.count_nonzero(labels == 0))}


# --------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------


def small_unet_run(folder: Path, raw_path: Path) -> tuple[Path, Path]:
    """A run config (YAML) with a small valid 3D UNet and its untrained checkpoint."""
    import torch

    from dacapo.cli.demo_configs import demo_unet
    from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig
    from dacapo.experiments.run_config import RunConfig
    from dacapo.experiments.tasks import DistanceTaskConfig
    from dacapo.io.config_yaml import to_yaml
    from dacapo.runs.model_builder import build_model

    arch = demo_unet("small", input_shape=(20, 60, 60), eval_shape_increase=(24, 72, 72))
    task = DistanceTaskConfig("d", channels=["fg"], clip_distance=40, tol_distance=16,
                              scale_factor=20)
    ds = DatasetConfig("raw", str(raw_path), str(raw_path))
    rc = RunConfig("load", task, arch, DataSplitConfig([ds], []), num_iterations=1, seed=0)
    config = folder / "run.yaml"
    to_yaml(rc, config)
    model = build_model(rc)
    checkpoint = folder / "checkpoint.pt"
    torch.save({"model": model.state_dict()}, checkpoint)
    _, out_shape = model.compute_output_shape(model.eval_input_shape)
    params = sum(p.numel() for p in model.parameters())
    print(f"  model: {params} parameters, eval input {tuple(model.eval_input_shape)} -> "
          f"output {tuple(out_shape)} voxels", flush=True)
    return config, checkpoint


def _measure_naive(kind: str, pred: Path, out: Path, voxels: int, rows: list) -> dict | None:
    """Run the naive in-memory reference of ``kind`` if it fits in memory (else a row saying so)."""
    fits, need = naive_fits(kind, voxels)
    if not fits:
        print(f"  naive {kind}: skipped, {need}", flush=True)
        rows.append(f"| {kind} naive (whole array in memory) | {voxels / 1e6:.0f} | 1 | - | - "
                    f"| - | - | - | - | not run: {need} |")
        return None
    r = measure({"kind": f"{kind}_naive", "workers": 1, "input": str(pred), "output": str(out)})
    if kind == "watershed":
        r["stitch_check"] = stitch_check(open_ds(str(out)))
    print("  ", r, flush=True)
    rows.append(_row(r, "naive reference: whole array in memory, one call"))
    return r


def _vs_naive(r: dict, naive: dict | None) -> str:
    if naive is None:
        return "no naive reference (does not fit in memory)"
    return (f"{naive['seconds'] / r['seconds']:.2f}x the naive speed, "
            f"{r['peak_pss_mib'] / naive['peak_pss_mib']:.2f}x its memory")


def _row(r: dict, note: str = "") -> str:
    return (f"| {r['kind']} | {r['mvoxels']:.0f} | {r['workers']} | {r['seconds']:.1f} | "
            f"{r['mvoxel_per_s']:.2f} | {r['peak_pss_mib']} | {r['peak_rss_mib']} | "
            f"{r['peak_single_rss_mib']} | {r['processes']} | {note} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default=Path(tempfile.gettempdir()) / "dacapo_load", type=Path)
    parser.add_argument("--threshold-shape", nargs=3, type=int, default=[1024, 1024, 1024])
    parser.add_argument("--watershed-shape", nargs=3, type=int, default=[1024, 1024, 1024])
    parser.add_argument("--predict-shape", nargs=3, type=int, default=[416, 512, 512])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--only", nargs="+", choices=["threshold", "watershed", "predict"],
                        default=["threshold", "watershed", "predict"])
    parser.add_argument("--keep", action="store_true", help="Keep the generated arrays.")
    parser.add_argument("--no-naive", action="store_true",
                        help="Skip the naive in-memory references.")
    args = parser.parse_args()

    base: Path = args.dir
    base.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        if "threshold" in args.only:
            pred = base / "threshold.zarr" / "prediction"
            if not pred.exists():
                generate(distance_block, pred, args.threshold_shape, 1, np.float32)
            naive = None if args.no_naive else _measure_naive(
                "threshold", pred, base / "threshold.zarr" / "naive",
                int(np.prod(args.threshold_shape)), rows)
            for w in args.workers:
                r = measure({"kind": "threshold", "workers": w, "input": str(pred),
                             "output": str(base / "threshold.zarr" / f"seg_{w}"),
                             "log_dir": str(base / "logs" / f"threshold_{w}")})
                print("  ", r, flush=True)
                rows.append(_row(r, _vs_naive(r, naive)))
        if "watershed" in args.only:
            pred = base / "watershed.zarr" / "affs"
            if not pred.exists():
                generate(affinity_block, pred, args.watershed_shape, len(OFFSETS), np.float32)
            naive = None if args.no_naive else _measure_naive(
                "watershed", pred, base / "watershed.zarr" / "naive",
                int(np.prod(args.watershed_shape)), rows)
            for w in args.workers:
                r = measure({"kind": "watershed", "workers": w, "input": str(pred),
                             "output": str(base / "watershed.zarr" / f"seg_{w}")})
                # in this process: the measured job's memory does not include the check
                seg = open_ds(str(base / "watershed.zarr" / f"seg_{w}"))
                r["stitch_check"] = stitch_check(seg)
                print("  ", r, flush=True)
                est = 1073.74 / r["mvoxel_per_s"]
                note = f"; 1024³ extrapolated: {est / 60:.1f} min" if r["mvoxels"] < 1000 else ""
                rows.append(_row(r, _vs_naive(r, naive) + note))
        if "predict" in args.only:
            raw = base / "predict.zarr" / "raw"
            if not raw.exists():
                generate(raw_block, raw, args.predict_shape, None, np.uint8)
            config, checkpoint = small_unet_run(base, raw)
            for w in args.workers:
                r = measure({"kind": "predict", "workers": w, "input": str(raw),
                             "output": str(base / "predict.zarr" / f"pred_{w}"),
                             "run_config": str(config), "checkpoint": str(checkpoint),
                             "log_dir": str(base / "logs" / f"predict_{w}")})
                print("  ", r, flush=True)
                rows.append(_row(r))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print(f"\n{os.cpu_count()} CPUs. Peak memory: summed over the job's process tree.")
    print("| job | Mvoxel | workers | s | Mvoxel/s | peak PSS MiB | peak RSS MiB "
          "| largest process RSS MiB | processes | note |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(r)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "_job":
        print(json.dumps(_job(json.loads(sys.argv[2]))), flush=True)
    else:
        main()
