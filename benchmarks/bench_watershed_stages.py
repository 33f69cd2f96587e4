"""Where the time of the blockwise mutex watershed goes, stage by stage (issue 13 item 6).

Runs the three passes of `dacapo.segment.mutex_watershed` serially in this process, over the
same block grid as `WatershedPostProcessor` (64³ blocks, context 2 voxels), on the synthetic
affinities of `bench_load` (3 offsets, float32, zarr chunks of 64³), and times:

- ``read``: the prediction's read ROI from zarr (`read_padded`, as the runner does);
- ``mwatershed``: `mwatershed.agglom` itself (inside `mutex_watershed`);
- ``prepare``: the rest of `mutex_watershed` (weights ``affs - bias`` as float64);
- ``ids``: the rest of `fragments_block` (renumber, unique ids, padded labels, sizes);
- ``scratch``: the stitching slabs and fragment sizes written by `fragments_block`;
- ``write``: the fragments written to zarr;
- ``stitch``: pass 2 (`stitch`, in the driver);
- ``relabel``: pass 3 (read fragments, `relabel_block`, write the final labels).

The sum is one worker's serial time; the parallel runs are `bench_load.py --only watershed`.

Run: ``.venv/bin/python benchmarks/bench_watershed_stages.py --shape 256 256 256``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import mwatershed
import numpy as np
from _harness import load, timed
from bench_load import BLOCK, OFFSETS, affinity_block, generate
from funlib.geometry import Coordinate, Roi
from funlib.persistence import open_ds

import dacapo.segment.mutex_watershed as bw
from dacapo.blockwise.grid import BlockGeometry
from dacapo.io.arrays import prepare_zarr, read_padded
from dacapo.ops.watershed import attractive_components

TIMES: dict[str, float] = defaultdict(float)


def _counted(name: str, fn):
    """``fn`` with the time of every call added to ``TIMES[name]``."""

    def wrapper(*args, **kwargs):
        seconds, result = timed(fn, *args, **kwargs)
        TIMES[name] += seconds
        return result

    return wrapper


def _write(array, slices, data) -> None:
    array[slices] = data


def passes(pred, geometry: BlockGeometry, blocks: list, scratch: Path, frags, seg) -> None:
    """The three passes, serially, with the stages counted in ``TIMES``."""
    read = _counted("read", read_padded)
    fragments = _counted("fragments_block", bw.fragments_block)
    write = _counted("write", _write)
    for b in blocks:
        data = read(pred._source_data, pred.roi, pred.voxel_size, b.read_roi)
        written = fragments(data, b, geometry=geometry, scratch=str(scratch), offsets=OFFSETS,
                            bias=0.5, watershed_kwargs={})
        write(frags._source_data, geometry.slices(b.write_roi, pred.roi), written)
    _counted("stitch", bw.stitch)(scratch, geometry, 0)
    relabel = _counted("relabel", _relabel_all)
    relabel(pred, geometry, blocks, scratch, frags, seg)


def _relabel_all(pred, geometry: BlockGeometry, blocks: list, scratch: Path, frags, seg) -> None:
    for b in blocks:
        sl = geometry.slices(b.write_roi, pred.roi)
        seg._source_data[sl] = bw.relabel_block(frags._source_data[sl], b, geometry=geometry,
                                                scratch=str(scratch))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", nargs=3, type=int, default=[256, 256, 256])
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="dacapo_ws_stages_"))
    pred_path = base / "ws.zarr" / "affs"
    if not pred_path.exists():
        generate(affinity_block, pred_path, args.shape, len(OFFSETS), np.float32)
    pred = open_ds(str(pred_path))
    vs = pred.voxel_size
    block = Coordinate((BLOCK,) * 3) * vs
    context = Coordinate((2,) * 3) * vs  # the post-processor's default: 2 x max |offset|
    geometry = BlockGeometry(pred.roi, vs, block, context)
    scratch = base / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    frag_path = base / "ws.zarr" / "fragments"
    seg_path = base / "ws.zarr" / "seg"
    for p in (frag_path, seg_path):
        shutil.rmtree(p, ignore_errors=True)
        prepare_zarr(p, total_roi=pred.roi, voxel_size=vs, dtype=np.uint64, write_size=block)
    frags, seg = open_ds(str(frag_path), mode="r+"), open_ds(str(seg_path), mode="r+")

    mwatershed.agglom = _counted("mwatershed", mwatershed.agglom)
    bw.mutex_watershed = _counted("mutex_watershed", bw.mutex_watershed)
    bw._save_arrays = _counted("scratch", bw._save_arrays)
    attractive_components(np.ones((3, 4, 4, 4)), OFFSETS)  # numba compilation / cache load
    blocks = []
    for pos in np.ndindex(*geometry.grid_shape):
        write = Roi(pred.roi.offset + Coordinate(pos) * block, block).intersect(pred.roi)
        blocks.append(SimpleNamespace(write_roi=write, read_roi=write.grow(context, context)))
    total, _ = timed(passes, pred, geometry, blocks, scratch, frags, seg)
    stages = {
        "read": TIMES["read"],
        "mwatershed": TIMES["mwatershed"],
        "prepare": TIMES["mutex_watershed"] - TIMES["mwatershed"],
        "ids": TIMES["fragments_block"] - TIMES["mutex_watershed"] - TIMES["scratch"],
        "scratch": TIMES["scratch"],
        "write": TIMES["write"],
        "stitch": TIMES["stitch"],
        "relabel": TIMES["relabel"],
    }
    mvox = float(np.prod(args.shape)) / 1e6
    print(f"{tuple(args.shape)} = {mvox:.1f} Mvoxel, {len(blocks)} blocks of {BLOCK}^3, serial "
          f"in one process: {total:.1f} s = {mvox / total:.2f} Mvoxel/s; {load()}")
    for name, sec in stages.items():
        print(f"  {name:<11} {sec:7.2f} s  {100 * sec / total:5.1f} %")
    if args.dir is None:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
