"""Prediction at the speed of the model: blockwise prediction vs the bare forward pass.

The volume: the FIB-SEM stack of ``fibsem_neurons`` (`_harness.data_dir`; 50 × 100 × 200 voxels,
1 Mvoxel; synthetic noise of that shape where it is absent). The model: a valid 3D UNet
(12 feature maps, one (2, 2, 2) downsampling, eval input 68³ → output 52³) of an
Affinities task with 9 affinities + 10 LSDs (19 output channels), untrained (speed does not
depend on the weights). The blocks: the 8 output blocks `dacapo.pipeline.predict` predicts for the
whole volume (reflect padding).

- *limit* (the bare forward pass): the model over the same 8 input tiles, read and
  normalised beforehand (in memory), in this process, timed around the forward passes
  only; once with eager torch (``torch.no_grad``, fp32: what the user's model costs) and
  once with the engine under test;
- *in process*: `dacapo.pipeline.predict.predict` with ``num_workers=0`` for each engine/precision
  (reads, forward passes, zarr writes);
- *1 worker*: ``num_workers=0`` with a log dir: this process (done-markers written, no
  worker start-up), and on a bigger volume also one worker *process* started through a worker
  command (``"{command}"``: the daisy runner, the process' imports and model load included);
- *write*: one output block into a zarr chunk with zarr's default Zstd vs Blosc-LZ4;
- *apply*: ``dacapo apply`` of the volume (prediction + mutex-watershed post-processing,
  a fresh process running the command line's `dacapo.cli.main` as a user runs it, exit
  included) with a breakdown: start-up and exit (imports), prediction (forward passes vs
  the rest), post-processing, and the old behaviour (2 daisy workers, torch engine)
  beside it.

Ratios are speeds relative to the limit (limit time / our time; goal ≥ 0.8), medians of
``--repeats`` runs; the machine load (``os.getloadavg``) is printed with every figure.
Prints a Markdown table for docs/performance.md.

Run: ``.venv/bin/python benchmarks/bench_predict.py [--repeats 3] [--compile]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from _harness import data_dir, load, repeat, timed

NEIGHBORHOOD = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (3, 0, 0), (0, 3, 0), (0, 0, 3),
                (9, 0, 0), (0, 9, 0), (0, 0, 9)]


def make_raw(folder: Path) -> Path:
    from dacapo.tools.convert import convert_tiff

    out = folder / "em.zarr" / "raw"
    stack = data_dir() / "fibsem_neurons" / "raw.tif"
    if stack.is_file():
        convert_tiff(stack, out, [10, 10, 10])
        return out
    from funlib.geometry import Coordinate
    from funlib.persistence import prepare_ds

    print("  (no fibsem_neurons stack here: synthetic noise of its shape)")
    ds = prepare_ds(str(out), shape=(50, 100, 200), offset=Coordinate(0, 0, 0),
                    voxel_size=Coordinate(10, 10, 10), axis_names=["z", "y", "x"],
                    dtype=np.uint8, mode="w")
    ds[ds.roi] = np.random.default_rng(0).integers(0, 255, (50, 100, 200), dtype=np.uint8)
    return out


def make_big(folder: Path, raw: Path, copies: int) -> Path:
    """The volume repeated ``copies`` times along x (every other copy mirrored)."""
    from funlib.persistence import prepare_ds

    from dacapo.io.arrays import open_array

    src = open_array(raw, "raw")
    data = np.asarray(src[src.roi])
    big = np.concatenate([data if i % 2 == 0 else data[..., ::-1] for i in range(copies)], -1)
    out = folder / "em.zarr" / "big"
    ds = prepare_ds(str(out), shape=big.shape, offset=src.roi.offset,
                    voxel_size=src.voxel_size, axis_names=["z", "y", "x"], dtype=big.dtype,
                    mode="w")
    ds[ds.roi] = big
    return out


def make_run(folder: Path, raw: Path):
    from dacapo.experiments.architectures import CNNectomeUNetConfig
    from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig
    from dacapo.experiments.run_config import RunConfig
    from dacapo.experiments.tasks import AffinitiesTaskConfig
    from dacapo.runs.model_builder import build_model
    from dacapo.runs.run_dir import prepare_run_dir

    arch = CNNectomeUNetConfig(
        name="unet", input_shape=(44, 44, 44), eval_shape_increase=(24, 24, 24), fmaps_in=1,
        fmaps_out=12, num_fmaps=12, fmap_inc_factor=2, downsample_factors=[(2, 2, 2)],
        kernel_size_down=[[(3, 3, 3)] * 2] * 2, kernel_size_up=[[(3, 3, 3)] * 2],
        padding="valid")
    task = AffinitiesTaskConfig("affs", neighborhood=NEIGHBORHOOD, lsds=True)
    ds = DatasetConfig("em", str(raw), str(raw))
    rc = RunConfig("bench_predict", task, arch, DataSplitConfig([ds], []), num_iterations=1,
                   seed=0)
    run_dir = prepare_run_dir(rc, folder / "runs")
    model = build_model(rc)
    run_dir.save_checkpoint(0, {"model": model.state_dict()})
    return rc, run_dir, model


def tiles(model, raw_path: Path):
    """The input tiles `dacapo.pipeline.predict` reads for the whole volume, in memory."""
    from dacapo.io.arrays import open_array, read_with_padding
    from dacapo.ops.intensity import normalize_raw
    from dacapo.pipeline.model_geometry import ModelGeometry, block_rois, prediction_roi

    raw = open_array(raw_path, "raw")
    geo = ModelGeometry(model, raw.voxel_size, model.eval_input_shape)
    out_roi = prediction_roi(raw.roi, geo, None, "reflect")
    out = []
    for roi in block_rois(out_roi, geo.output_size):
        data = normalize_raw(read_with_padding(raw, roi.grow(geo.context, geo.context),
                                               "reflect"))
        out.append(np.ascontiguousarray(data[None, None]))
    return out


def codec_times(folder: Path, model, tile: np.ndarray, repeats: int) -> tuple[float, float]:
    """Median seconds to write the model's output for ``tile`` (one block) into a zarr
    chunk with zarr's default Zstd and with Blosc-LZ4 + shuffle (`compressors_for`)."""
    import zarr

    from dacapo.io.ome_write import compressors_for

    with torch.no_grad():
        y = model(torch.from_numpy(tile)).numpy()[0]
    times = []
    for name, codecs in (("zstd", "auto"), ("lz4", compressors_for(np.float32))):
        z = zarr.create_array(str(folder / f"codec_{name}.zarr"), shape=y.shape, chunks=y.shape,
                              dtype=np.float32, compressors=codecs, overwrite=True)

        def write(z=z):
            z[...] = y
        times.append(repeat(write, max(3, repeats)).median)
    return times[0], times[1]


def bare(model, inputs, engine: str, precision: str, repeats: int) -> tuple[float, np.ndarray]:
    from dacapo.pipeline.engines import make_forward

    forward = make_forward(model, engine, precision)
    first = forward(inputs[0])  # warm-up (and the ONNX export)
    return repeat(lambda: [forward(x) for x in inputs], repeats).median, first


def in_process(rc, run_dir, raw, folder: Path, engine, precision, repeats, workers=0,
               cached=False, worker_command=None) -> float:
    """Median time of `predict` (``cached``: with the ONNX export cached beforehand)."""
    from dacapo.pipeline.predict import predict
    from dacapo.pipeline.predict_options import PredictOptions

    checkpoint = run_dir.checkpoint_path(0)

    def once():
        out = folder / "pred.zarr" / "prediction"
        shutil.rmtree(out.parent, ignore_errors=True)
        shutil.rmtree(folder / "logs", ignore_errors=True)
        if not cached:
            shutil.rmtree(run_dir.checkpoints / ".onnx", ignore_errors=True)
        predict(rc, checkpoint, raw, out, PredictOptions(
            num_workers=workers, engine=engine, precision=precision, progress=False,
            log_dir=folder / "logs", worker_command=worker_command))

    if cached:
        once()
    return repeat(once, repeats).median


APPLY_CHILD = r"""
import atexit, json, sys, time
t0 = time.perf_counter()
import dacapo.pipeline.apply as A
import dacapo.pipeline.engines as I
from dacapo.cli.main import main
t_import = time.perf_counter() - t0
spent = {"predict": 0.0, "forward": 0.0, "apply": 0.0}
_predict, _make, _apply = A.predict, I.make_forward, A.apply_run
def timed_make(*a, **k):
    f = _make(*a, **k)
    def g(x):
        s = time.perf_counter(); y = f(x); spent["forward"] += time.perf_counter() - s
        return y
    return g
def timed(name, func):
    def run(*a, **k):
        s = time.perf_counter(); r = func(*a, **k); spent[name] += time.perf_counter() - s
        return r
    return run
A.predict = timed("predict", _predict)
A.apply_run = timed("apply", _apply)
import dacapo.pipeline.predict as P
P.make_forward = timed_make
atexit.register(lambda: print(json.dumps({"import": t_import, **spent}), flush=True))
run, raw, out, workers, engine = sys.argv[1:6]
main(["apply", run, "--input", raw, "--output", out, "--iteration", "0", "--quiet",
      "--engine", engine] + ([] if workers == "default" else ["--workers", workers]))
"""


def apply_cli(run_dir, raw, folder: Path, workers: str, engine: str, repeats: int,
              cached: bool = False) -> dict:
    """Wall time of a fresh ``dacapo apply`` process, with a breakdown (medians)."""
    rows = []
    for _ in range(repeats):
        if not cached:
            shutil.rmtree(run_dir.checkpoints / ".onnx", ignore_errors=True)
        out = folder / "seg.zarr"
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(run_dir.logs / "apply", ignore_errors=True)  # done-markers: redo all
        wall, proc = timed(subprocess.run, [sys.executable, "-c", APPLY_CHILD, str(run_dir.path),
                                            str(raw), str(out / "seg"), workers, engine],
                           capture_output=True, text=True,
                           env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if proc.returncode:
            raise RuntimeError(proc.stderr[-2000:])
        rows.append({"wall": wall, **json.loads(proc.stdout.strip().splitlines()[-1])})
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def big_rows(rc, run_dir, model, raw, folder: Path, default: str, copies: int) -> list:
    """``copies`` of the volume with 1 worker: this process, and a worker process."""
    big = make_big(folder, raw, copies)
    big_inputs = tiles(model, big)
    limit_big = bare(model, big_inputs, default, "fp32", 1)[0]
    here_big = in_process(rc, run_dir, big, folder, "auto", "fp32", 1, workers=0)
    proc_big = in_process(rc, run_dir, big, folder, "auto", "fp32", 1, workers=1,
                          worker_command="{command}")
    print(f"{copies} Mvoxel ({len(big_inputs)} tiles): bare {default} {limit_big:.2f} s, "
          f"1 worker (this process) {here_big:.2f} s ({limit_big / here_big:.2f}), "
          f"1 worker process {proc_big:.2f} s ({limit_big / proc_big:.2f}) ({load()})",
          flush=True)
    return [(f"predict {copies} Mvoxel, 1 worker (this process), {default}",
             here_big, limit_big, f"bare {default}; one run; export included"),
            (f"predict {copies} Mvoxel, 1 worker process (worker command), {default}",
             proc_big, limit_big,
             f"bare {default}; one run; the process' start-up and export included")]


def apply_rows(run_dir, raw, folder: Path, limit_torch: float, repeats: int) -> list:
    """``dacapo apply`` in a fresh process, four ways, with its time broken down."""
    rows = []
    for label, workers, engine, cached in (
            ("default (in process)", "default", "auto", False),
            ("default, export cached", "default", "auto", True),
            ("1 worker (this process)", "1", "auto", False),
            ("2 workers, torch (before)", "2", "torch", False)):
        r = apply_cli(run_dir, raw, folder, workers, engine, repeats, cached)
        start_up = r["wall"] - r["apply"]
        print(f"{label}: wall {r['wall']:.2f} s = start-up and exit {start_up:.2f} s (imports "
              f"{r['import']:.2f}) + predict {r['predict']:.2f} s (forward in this process "
              f"{r['forward']:.2f}) + post-process and the rest "
              f"{r['apply'] - r['predict']:.2f} s ({load()})", flush=True)
        rows.append((f"dacapo apply 1 Mvoxel, {label}", r["wall"], limit_torch,
                     f"start-up + exit {start_up:.1f} s, predict {r['predict']:.1f} s (forward "
                     f"here {r['forward']:.1f} s), post-process {r['apply'] - r['predict']:.1f}"
                     f" s; goal ≤ 2 × {limit_torch:.1f} + 3 = {2 * limit_torch + 3:.1f} s"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also torch.compile (minutes)")
    parser.add_argument("--big", type=int, default=4,
                        help="copies of the volume for the 1-worker case (0: skip)")
    args = parser.parse_args()
    from dacapo.pipeline.engines import onnx_available

    torch.set_num_threads(os.cpu_count() or 1)
    folder = Path(tempfile.mkdtemp(prefix="bench_predict_"))
    rows = []
    try:
        raw = make_raw(folder)
        rc, run_dir, model = make_run(folder, raw)
        model.eval()
        inputs = tiles(model, raw)
        print(f"# {len(inputs)} tiles of {inputs[0].shape[2:]}, {torch.get_num_threads()} "
              f"threads, onnxruntime {'yes' if onnx_available() else 'no'}", flush=True)
        limit_torch, ref = bare(model, inputs, "torch", "fp32", args.repeats)
        print(f"bare forward, torch fp32: {limit_torch:.2f} s ({load()})", flush=True)
        engines = [("torch", "fp32"), ("channels_last", "fp32"), ("torch", "bf16")]
        if onnx_available():
            engines.insert(0, ("onnx", "fp32"))
        if args.compile:
            engines.append(("compile", "fp32"))
        for engine, precision in engines:
            limit, y = bare(model, inputs, engine, precision, args.repeats)
            err = float(np.abs(y - ref).max())
            ours = in_process(rc, run_dir, raw, folder, engine, precision, args.repeats)
            note = f"max |Δ| vs torch fp32 {err:.1e}"
            print(f"{engine} {precision}: bare {limit:.2f} s, predict in process {ours:.2f} s "
                  f"({limit / ours:.2f} of its limit, {limit_torch / ours:.2f} of torch's), "
                  f"{note} ({load()})", flush=True)
            rows.append((f"predict 1 Mvoxel in process, {engine} {precision}", ours, limit,
                         f"bare {engine} {precision}; {note}"))
            if engine == "onnx":
                warm = in_process(rc, run_dir, raw, folder, engine, precision, args.repeats,
                                  cached=True)
                print(f"onnx, export cached: predict in process {warm:.2f} s "
                      f"({limit / warm:.2f} of its limit) ({load()})", flush=True)
                rows.append(("predict 1 Mvoxel in process, onnx, export cached", warm, limit,
                             "bare onnx fp32"))
        from dacapo.pipeline.engines import resolve_engine

        default = resolve_engine("auto", "fp32", torch.device("cpu"), len(inputs),
                                 input_shape=model.eval_input_shape)
        limit_default = bare(model, inputs, default, "fp32", 1)[0]
        one = in_process(rc, run_dir, raw, folder, "auto", "fp32", args.repeats, workers=0)
        print(f"1 worker = this process ({default}): {one:.2f} s ({limit_default / one:.2f} of "
              f"its limit) ({load()})", flush=True)
        rows.append((f"predict 1 Mvoxel, 1 worker (this process), {default}", one,
                     limit_default, f"bare {default}; export included, done-markers written"))
        if args.big:
            rows += big_rows(rc, run_dir, model, raw, folder, default, args.big)
        zstd, lz4 = codec_times(folder, model, inputs[0], args.repeats)
        print(f"write one 19-channel output block: zstd {zstd * 1e3:.1f} ms, blosc-lz4 "
              f"{lz4 * 1e3:.1f} ms ({zstd / lz4:.1f}x) ({load()})", flush=True)
        rows.append(("write one output block (19 x 52³ float32), Blosc-LZ4 (our default)", lz4,
                     zstd, "reference: zarr's default Zstd level 0"))
        rows += apply_rows(run_dir, raw, folder, limit_torch, args.repeats)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\n| case | ours (s) | reference (s) | ratio | limit / note |  ({load()})")
    print("|---|---|---|---|---|")
    for case, ours, ref_t, note in rows:
        print(f"| {case} | {ours:.2f} | {ref_t:.2f} | {ref_t / ours:.2f} | {note} |")


if __name__ == "__main__":
    main()
