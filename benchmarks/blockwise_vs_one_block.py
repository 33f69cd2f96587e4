"""Blockwise vs one block on a real prediction (issue 25, item 4): the agglomeration
post-processor of a trained affinities run, applied to its held-out prediction blockwise
(blocks of ``--block`` voxels per axis, in this process) and as one block in memory, at
thresholds 0.1 / 0.3 / 0.5 / 0.7: the VOI between the two, their segment counts, and each
one's VOI against the GT (labelled voxels only).

Run: ``.venv/bin/python benchmarks/blockwise_vs_one_block.py RUN_DIR [--iteration N]
[--block 64]`` (e.g. a run of ``bench_plan_cost.py --budget 2 fibsem_neurons``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from funlib.geometry import Coordinate
from funlib.persistence import Array

from dacapo.blockwise import BlockwiseOptions
from dacapo.io.arrays import open_array
from dacapo.ops.instance_metrics import contingency_table, variation_of_information
from dacapo.runs.run_dir import RunDir

THRESHOLDS = (0.1, 0.3, 0.5, 0.7)


def voi(a: np.ndarray, b: np.ndarray) -> float:
    split, merge = variation_of_information(contingency_table(a, b))
    return round(split + merge, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--iteration", type=int, default=None, help="default: the last")
    parser.add_argument("--block", type=int, default=64, help="voxels per axis")
    args = parser.parse_args()
    run = RunDir(args.run_dir)
    rc = run.load_config()
    post = rc.task_config.build().post_processor
    iterations = sorted(p.name for p in run.predictions.iterdir())
    it = f"{args.iteration:08d}" if args.iteration is not None else iterations[-1]
    dataset = rc.datasplit_config.validate[0]
    pred_path = run.predictions / it / f"{dataset.name}.zarr" / "prediction"
    pred, gt = open_array(pred_path), open_array(dataset.gt)
    roi = pred.roi.intersect(gt.roi)
    truth = np.asarray(gt[roi]).astype(np.uint64)
    labelled = truth > 0
    params = [p for p in post.enumerate_parameters() if round(p.threshold, 3) in THRESHOLDS]
    block = Coordinate((args.block,) * pred.voxel_size.dims) * pred.voxel_size
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        post.set_prediction(str(pred_path))
        options = BlockwiseOptions(num_workers=0, progress=False, log_dir=work / "logs")
        blockwise = {p.id: np.asarray(post.process(p, work / "bw.zarr" / str(p.id), options,
                                                   block_size=block)[roi]) for p in params}
        post.set_prediction(Array(np.asarray(pred.data), offset=pred.roi.offset,
                                  voxel_size=pred.voxel_size))
        one = {p.id: np.asarray(post.process(p, work / "one.zarr" / str(p.id))[roi])
               for p in params}
        shutil.rmtree(work / "logs", ignore_errors=True)
    print(f"{rc.name}, iteration {int(it)}, {dataset.name} {tuple(truth.shape)}, blocks "
          f"{args.block}^3 voxels")
    for p in params:
        a, b = blockwise[p.id].astype(np.uint64) + 1, one[p.id].astype(np.uint64) + 1
        print(json.dumps({
            "threshold": p.threshold, "voi_blockwise_vs_one_block": voi(a, b),
            "segments_blockwise_one_block": [len(np.unique(a)), len(np.unique(b))],
            "voi_vs_gt_blockwise_one_block": [voi(a[labelled], truth[labelled]),
                                              voi(b[labelled], truth[labelled])]}), flush=True)


if __name__ == "__main__":
    main()
