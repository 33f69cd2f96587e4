"""Training snapshots: one batch's arrays and the model's prediction, written for viewing
as ``snapshots/<iteration>.zarr`` (OME-NGFF images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from funlib.geometry import Coordinate

from dacapo.io.ome_write import write_image
from dacapo.runs.run_dir import RunDir


def write_snapshot(run_dir: RunDir, iteration: int, sample: dict, prediction: np.ndarray) -> Path:
    """``snapshots/<iteration>.zarr`` with raw, gt, mask, target, weight, prediction: OME-NGFF
    images (`dacapo.io.ome_write.write_image`; gt and mask as label images)."""
    path = run_dir.snapshots / f"{iteration:08d}.zarr"
    run_dir.snapshots.mkdir(parents=True, exist_ok=True)

    def as_np(x):
        return x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)

    vs = Coordinate(as_np(sample["voxel_size"]).tolist())
    ovs = Coordinate(as_np(sample["output_voxel_size"]).tolist())
    arrays = {
        "raw": (as_np(sample["raw"]), as_np(sample["raw_offset"]), vs),
        "gt": (as_np(sample["gt"]), as_np(sample["gt_offset"]), ovs),
        "mask": (as_np(sample["mask"]), as_np(sample["gt_offset"]), ovs),
        "target": (as_np(sample["target"]), as_np(sample["out_offset"]), ovs),
        "weight": (as_np(sample["weight"]), as_np(sample["out_offset"]), ovs),
        "prediction": (prediction, as_np(sample["out_offset"]), ovs),
    }
    for name, (data, offset, voxel_size) in arrays.items():
        write_image(path / name, data, offset.tolist(), voxel_size, label=name in ("gt", "mask"))
    return path
