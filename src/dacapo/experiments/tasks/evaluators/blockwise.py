"""Exact evaluation of volumes bigger than memory: `evaluate_blockwise`.

``evaluate_blockwise(evaluator, segmentation, ground_truth)`` returns the score object of
``evaluator.evaluate(segmentation, ground_truth)``, computed block by block as a map job of
the blockwise runner (`dacapo.blockwise.map_reduce.map_reduce_blocks`) with memory bounded by the block size plus
the merged tables, for the instance, binary and multi-class evaluators:

- **instance**: each block counts its contingency table in the original label ids
  (`dacapo.ops.instance_metrics.label_pairs`); tables add up (`merge_label_pairs`) and VOI,
  adapted Rand error and the object matching (per-pair IoU from the table: F1 / AP at IoU
  0.5 and over 0.5:0.95) are functions of the whole table: **exact** for any volume. Memory: one block plus the table (one row per distinct truth/segment pair).
- **multi-class**: confusion matrices add up: **exact**.
- **CellMap** (`CellMapEvaluator`): not blockwise (matching and Hausdorff distances need
  whole objects): evaluated in memory up to its ``MAX_VOXELS``, an `InputError` beyond.
- **binary + instance** (`BinaryInstanceEvaluator`, one channel): the binary pass of the
  foreground and the instance pass, combined.
- **binary** (per channel): counts add up; distances are measured on the block read with a
  context of r = max(clip_distance, tol_distance) world units on every side (``context``
  for a larger r; `dacapo.ops.binary_metrics.binary_stats`). Every distance ≤ r is then
  exact and a larger one is known to exceed r, so the counts, rates, Dice, Jaccard, VOI,
  the **tolerance** metrics and the **clipped** mean distances are **exact**. The unclipped
  ones (hausdorff, mean_false_positive/negative_distance, mean_false_distance) are exact
  when no false voxel lies farther than r from the other mask — then they equal the
  in-memory values; otherwise they are NaN and a warning says to evaluate with a larger
  ``context`` (the farthest distance is not known, only that it exceeds r).

Inputs are zarr/N5 paths, opened read-only (in every worker). Scored ROI: that of the
evaluator (the intersection for instances, `common_roi` for binary and multi-class), or
``roi`` inside it; context voxels outside it read as 0, as the in-memory evaluator sees
only that ROI. Workers, ``log_dir`` and ``task_id`` (default ``evaluate``): ``options``
(`dacapo.blockwise.options.BlockwiseOptions`); resumable with a ``log_dir`` (see
`map_reduce_blocks`).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import attr
import numpy as np
from funlib.geometry import Coordinate, Roi

from dacapo.blockwise.map_reduce import map_reduce_blocks
from dacapo.blockwise.options import BlockwiseOptions
from dacapo.blockwise.worker import BlockInfo
from dacapo.io.arrays import open_array
from dacapo.ops.binary_metrics import (
    BinaryStats,
    binary_stats,
    merge_binary_stats,
    metrics_from_stats,
)
from dacapo.ops.channels import gt_to_channels
from dacapo.ops.instance_metrics import (
    LabelPairs,
    check_labels,
    label_pairs,
    merge_label_pairs,
    table_from_pairs,
)
from dacapo.ops.multiclass_metrics import confusion_matrix, metrics_from_confusion

from .binary_instance_evaluator import BinaryInstanceEvaluator
from .binary_segmentation_evaluator import (
    BinarySegmentationEvaluator,
    common_roi,
    output_channels,
)
from .cellmap_evaluator import CellMapEvaluator
from .evaluation_scores import EvaluationScores
from .instance_evaluation_scores import InstanceEvaluationScores
from .instance_evaluator import (
    InstanceEvaluator,
    instance_roi,
    instance_scores,
    spatial_labels,
)
from .multi_class_evaluator import MultiClassEvaluator, class_ids

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_BLOCK_VOXELS", "evaluate_blockwise"]

#: default block edge in voxels (128³ uint64 labels = 16 MiB per array)
DEFAULT_BLOCK_VOXELS = 128

_INT_FIELDS = [f for f, v in BinaryStats._field_defaults.items() if isinstance(v, int)]
_FLOAT_FIELDS = [f for f, v in BinaryStats._field_defaults.items() if isinstance(v, float)]
#: merge the instance tables whenever this many pair rows have accumulated
_MERGE_ROWS = 1_000_000


# ---- per block (run by the runner's workers: module-level, picklable) ---------------------


def _instance_block(output: np.ndarray, truth: np.ndarray,
                    block: BlockInfo) -> dict[str, np.ndarray]:
    dims, region = block.voxel_size.dims, block.region
    seg = spatial_labels(output, dims, "output_array")[region]
    gt = spatial_labels(truth, dims, "evaluation_array")[region]
    check_labels(seg, "output_array")
    check_labels(gt, "evaluation_array")
    pairs = label_pairs(seg, gt)
    return {"truth_ids": pairs.truth_ids, "seg_ids": pairs.seg_ids, "counts": pairs.counts}


def _multiclass_block(output: np.ndarray, truth: np.ndarray, block: BlockInfo, *,
                      num_classes: int) -> dict[str, np.ndarray]:
    dims, region = block.voxel_size.dims, block.region
    test = class_ids(output, dims, num_classes, "output array")[region]
    truth = class_ids(truth, dims, num_classes, "evaluation array")[region]
    return {"confusion": confusion_matrix(test, truth, num_classes)}


def _binary_block(output: np.ndarray, truth: np.ndarray, block: BlockInfo, *,
                  num_channels: int, tol: float, clip: float,
                  radius: float) -> dict[str, np.ndarray]:
    dims = block.voxel_size.dims
    test = output_channels(output, num_channels, dims) != 0
    truth = gt_to_channels(truth, num_channels, dims, "evaluation array") != 0
    stats = [
        binary_stats(test[c], truth[c], tuple(block.voxel_size), tol, clip,
                     region=block.region, exact_radius=radius)
        for c in range(num_channels)
    ]
    return {
        "ints": np.array([[getattr(s, f) for f in _INT_FIELDS] for s in stats], np.int64),
        "floats": np.array([[getattr(s, f) for f in _FLOAT_FIELDS] for s in stats], np.float64),
    }


# ---- reductions (this process) -------------------------------------------------------------


def _merge_pairs(results: Iterator[dict[str, np.ndarray]]) -> LabelPairs:
    """All blocks' tables merged, a batch at a time (memory: the merged table + a batch)."""
    merged: list[LabelPairs] = []
    batch: list[LabelPairs] = []
    rows = 0
    for r in results:
        batch.append(LabelPairs(r["truth_ids"], r["seg_ids"], r["counts"]))
        rows += len(r["counts"])
        if rows >= _MERGE_ROWS:
            merged = [merge_label_pairs(merged + batch)]
            batch, rows = [], len(merged[0].counts)
    return merge_label_pairs(merged + batch)


def _sum_confusion(results: Iterator[dict[str, np.ndarray]]) -> np.ndarray:
    return sum((r["confusion"].astype(np.int64) for r in results), start=np.int64(0))


def _merge_stats(results: Iterator[dict[str, np.ndarray]], num_channels: int) -> list[BinaryStats]:
    totals = [BinaryStats() for _ in range(num_channels)]
    for r in results:
        for c in range(num_channels):
            part = dict(zip(_INT_FIELDS, map(int, r["ints"][c])))
            part.update(zip(_FLOAT_FIELDS, map(float, r["floats"][c])))
            totals[c] = merge_binary_stats([totals[c], BinaryStats(**part)])
    return totals


# ---- entry point ---------------------------------------------------------------------------


def _scored_roi(evaluator, output, truth, roi: Roi | None) -> Roi:
    scored = (instance_roi(output, truth) if isinstance(evaluator, InstanceEvaluator)
              else common_roi(output, truth))
    if roi is None:
        return scored
    roi = Roi(roi.offset, roi.shape)
    if not scored.contains(roi):
        raise ValueError(f"roi {roi} is not inside the scored ROI {scored} of the two arrays")
    return roi


def evaluate_blockwise(
    evaluator,
    segmentation_path: str | Path,
    gt_path: str | Path,
    roi: Roi | None = None,
    block_size: Coordinate | None = None,
    context: float | None = None,
    options: BlockwiseOptions | None = None,
) -> EvaluationScores:
    """``evaluator.evaluate(segmentation_path, gt_path)`` computed block by block (module
    docstring: what is exact). ``block_size`` in world units (default `DEFAULT_BLOCK_VOXELS`
    voxels per axis); ``context`` (binary only, world units): the radius r around each block
    within which distances are exact (default and minimum: max(clip_distance, tol_distance))."""
    options = BlockwiseOptions() if options is None else options
    task_id = options.task_id or "evaluate"
    if isinstance(evaluator, CellMapEvaluator):  # whole objects: in memory, up to its limit
        return evaluator.evaluate(segmentation_path, gt_path, roi)
    if isinstance(evaluator, BinaryInstanceEvaluator):  # the binary and the instance passes
        if len(evaluator.channels) != 1:
            raise TypeError("evaluate_blockwise: BinaryInstanceEvaluator with several channels "
                            "has no blockwise evaluation (one channel has)")
        binary = evaluate_blockwise(
            evaluator.binary_part(), segmentation_path, gt_path, roi, block_size, context,
            attr.evolve(options, task_id=f"{task_id}_binary"))
        instances = evaluate_blockwise(
            InstanceEvaluator(), segmentation_path, gt_path, roi, block_size,
            options=attr.evolve(options, task_id=f"{task_id}_instances"))
        channel = evaluator.channels[0]
        b = {m: binary[f"{channel}__{m}"] for m in binary.METRICS}
        return evaluator.scores_from_metrics([b], [instances.to_dict()])
    for name, path in (("segmentation_path", segmentation_path), ("gt_path", gt_path)):
        if not isinstance(path, str | Path):
            raise TypeError(f"evaluate_blockwise: {name} must be a zarr/N5 array path (workers "
                            f"open it themselves), got {type(path).__name__}")
    output = open_array(segmentation_path, "output array")
    truth = open_array(gt_path, "evaluation array")
    scored = _scored_roi(evaluator, output, truth, roi)
    vs = output.voxel_size
    if block_size is None:
        block_size = Coordinate(min(DEFAULT_BLOCK_VOXELS * v, s) for v, s in zip(vs, scored.shape))
    inputs = {"output": segmentation_path, "truth": gt_path}
    run = functools.partial(map_reduce_blocks, inputs=inputs, roi=scored, block_size=block_size,
                            options=attr.evolve(options, task_id=task_id))
    if isinstance(evaluator, InstanceEvaluator):
        pairs = run(_instance_block, _merge_pairs, config={"evaluator": "instance"})
        return InstanceEvaluationScores(instance_scores(table_from_pairs(pairs)))
    if isinstance(evaluator, MultiClassEvaluator):
        num = len(evaluator.classes)
        block = functools.partial(_multiclass_block, num_classes=num)
        cm = run(block, _sum_confusion, config={"evaluator": "multiclass", "classes": num})
        return evaluator.scores_from_metrics(*metrics_from_confusion(cm))
    if not isinstance(evaluator, BinarySegmentationEvaluator):
        raise TypeError(
            f"evaluate_blockwise: no blockwise evaluation for {type(evaluator).__name__} "
            "(instance, binary segmentation and multi-class evaluators have one)"
        )
    num = len(evaluator.channels)
    tol, clip = evaluator.tol_distance, evaluator.clip_distance
    radius = max(clip, tol) if context is None else float(context)
    if radius < max(clip, tol):
        raise ValueError(f"context {radius} is smaller than max(clip_distance, tol_distance) = "
                         f"{max(clip, tol)}")
    # the block grown by ceil(r / voxel) voxels per axis holds the ball of radius r
    grow = Coordinate(int(math.ceil(radius / v - 1e-9)) * v for v in vs)
    block = functools.partial(_binary_block, num_channels=num, tol=tol, clip=clip, radius=radius)
    config = {"evaluator": "binary", "channels": num, "tol": tol, "clip": clip, "radius": radius}
    stats = run(block, functools.partial(_merge_stats, num_channels=num), context=grow,
                config=config)
    for channel, s in zip(evaluator.channels, stats):
        if s.fp_far + s.fn_far:
            logger.warning(
                "blockwise evaluation, channel %r: %d false voxels lie farther than the context "
                "r = %.4g from the other mask, so hausdorff and the unclipped mean distances are "
                "NaN (clipped and tolerance metrics are exact); evaluate with a larger context "
                "for them", channel, s.fp_far + s.fn_far, radius)
    return evaluator.scores_from_metrics([metrics_from_stats(s) for s in stats])
