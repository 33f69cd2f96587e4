"""Exact evaluation of volumes bigger than memory, block by block on daisy.

`evaluate_blockwise(evaluator, segmentation, ground_truth)` gives the score object of
``evaluator.evaluate(segmentation, ground_truth)`` with memory bounded by the block size
(plus the merged tables), for the instance, binary and multi-class evaluators:

- **instance**: each block counts its contingency table in the original label ids
  (`dacapo.ops.instance_metrics.label_pairs`); tables add up over blocks
  (`merge_label_pairs`), and VOI, adapted Rand error and IoU matching are functions of the
  whole table (`metrics_from_table`): **exact** for any volume. Memory: one block plus the
  table (distinct truth/segment pairs), never the volume.
- **multi-class**: confusion matrices add up: **exact**.
- **binary** (per channel): voxel counts add up; distances are measured on the block read
  with a context of r = max(clip_distance, tol_distance) world units (``context`` to choose
  a larger r) on every side (`dacapo.ops.binary_metrics.binary_stats`). Every distance ≤ r
  is then exact, and a larger one is known to be larger than r, so the counts, rates,
  Dice/Jaccard/VOI, the **tolerance** metrics and the **clipped** mean distances are
  **exact**. The unclipped ones (hausdorff, mean_false_*_distance, mean_false_distance)
  are exact when no false voxel lies farther than r from the other mask — then they equal
  the in-memory values; otherwise they are NaN and a warning names the context to enlarge.

Inputs are zarr/N5 paths (they are opened read-only, in every worker). Scored ROI: as in
the evaluator (intersection for instances, `common_roi` for binary and multi-class), or
``roi`` inside it. Voxels of the read context outside the scored ROI are read as 0, exactly
as the in-memory evaluator, which sees only the scored ROI.

Each block writes its partial result to ``<log_dir>/<task_id>/results/<block_id>.npz``
(atomically; the file is the block's done-marker), so a killed run re-run with the same
``log_dir`` only does the missing blocks; without ``log_dir`` a temporary directory is
used and removed. With ``num_workers`` > 1 daisy runs the blocks in worker processes.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import shutil
import tempfile
import traceback
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from funlib.geometry import Coordinate, Roi

from dacapo.experiments.tasks.evaluators.binary_segmentation_evaluator import (
    BinarySegmentationEvaluator,
    common_roi,
    output_channels,
)
from dacapo.experiments.tasks.evaluators.evaluation_scores import EvaluationScores
from dacapo.experiments.tasks.evaluators.instance_evaluation_scores import (
    InstanceEvaluationScores,
)
from dacapo.experiments.tasks.evaluators.instance_evaluator import (
    InstanceEvaluator,
    instance_roi,
    spatial_labels,
)
from dacapo.experiments.tasks.evaluators.multi_class_evaluator import (
    MultiClassEvaluator,
    class_ids,
)
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
    metrics_from_table,
    table_from_pairs,
)
from dacapo.ops.multiclass_metrics import confusion_matrix, metrics_from_confusion
from dacapo.store.arrays import open_array, read_padded

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_BLOCK_VOXELS", "evaluate_blockwise"]

#: default block edge in voxels (128³ uint64 labels = 16 MiB per array)
DEFAULT_BLOCK_VOXELS = 128

_INT_FIELDS = [f for f, v in BinaryStats._field_defaults.items() if isinstance(v, int)]
_FLOAT_FIELDS = [f for f, v in BinaryStats._field_defaults.items() if isinstance(v, float)]
#: merge the instance tables whenever this many pair rows have accumulated
_MERGE_ROWS = 1_000_000


@dataclass(frozen=True)
class _Spec:
    """What a block needs (pickled to workers): the kind of evaluation and its parameters."""

    kind: str  # "instance" | "binary" | "multiclass"
    segmentation: str
    ground_truth: str
    roi_offset: tuple[int, ...]
    roi_shape: tuple[int, ...]
    results_dir: str
    num_channels: int = 1  # channels (binary) or classes (multi-class)
    tol_distance: float = 0.0
    clip_distance: float = 0.0
    exact_radius: float = 0.0

    @property
    def roi(self) -> Roi:
        return Roi(self.roi_offset, self.roi_shape)


_OPEN: dict[str, object] = {}


def _open(path: str):
    if path not in _OPEN:
        _OPEN[path] = open_array(path, path, "r")
    return _OPEN[path]


def _read(path: str, read_roi: Roi, roi: Roi) -> np.ndarray:
    """``read_roi`` of the array at ``path``, 0 outside the scored ``roi`` (and the array)."""
    array = _open(path)
    inside = read_roi.intersect(roi)
    if array.lazy_ops:
        data = np.asarray(array.to_ndarray(inside, fill_value=0))
    else:
        data = read_padded(array._source_data, array.roi, array.voxel_size, inside)
    if inside == read_roi:
        return data
    vs = array.voxel_size
    out = np.zeros(data.shape[: data.ndim - vs.dims] + tuple(read_roi.shape / vs), data.dtype)
    out[(Ellipsis, *((inside - read_roi.offset) / vs).to_slices())] = data
    return out


def _block_result(spec: _Spec, read_roi: Roi, write_roi: Roi) -> dict[str, np.ndarray]:
    """The partial result of one block (arrays to save)."""
    vs = _open(spec.segmentation).voxel_size
    dims = vs.dims
    seg = _read(spec.segmentation, read_roi, spec.roi)
    gt = _read(spec.ground_truth, read_roi, spec.roi)
    region = ((write_roi - read_roi.offset) / vs).to_slices()
    if spec.kind == "instance":
        seg = spatial_labels(seg, dims, "output_array")[region]
        gt = spatial_labels(gt, dims, "evaluation_array")[region]
        check_labels(seg, "output_array")
        check_labels(gt, "evaluation_array")
        pairs = label_pairs(seg, gt)
        return {"truth_ids": pairs.truth_ids, "seg_ids": pairs.seg_ids, "counts": pairs.counts}
    if spec.kind == "multiclass":
        num = spec.num_channels
        test = class_ids(seg, dims, num, "output array")[region]
        truth = class_ids(gt, dims, num, "evaluation array")[region]
        return {"confusion": confusion_matrix(test, truth, num)}
    num = spec.num_channels
    test = output_channels(seg, num, dims) != 0
    truth = gt_to_channels(gt, num, dims, "evaluation array") != 0
    stats = [
        binary_stats(
            test[c], truth[c], tuple(vs), spec.tol_distance, spec.clip_distance,
            region=region, exact_radius=spec.exact_radius,
        )
        for c in range(num)
    ]
    return {
        "ints": np.array([[getattr(s, f) for f in _INT_FIELDS] for s in stats], np.int64),
        "floats": np.array([[getattr(s, f) for f in _FLOAT_FIELDS] for s in stats], np.float64),
    }


def _result_path(results_dir: str, block_id: int) -> Path:
    return Path(results_dir) / f"{block_id}.npz"


def _is_done(results_dir: str, block) -> bool:
    """daisy check function: the block's result file exists."""
    return _result_path(results_dir, block.block_id[1]).exists()


def _run_block(spec: _Spec, block) -> None:
    """daisy block function: compute and save one block's result (atomically); on error the
    traceback goes to ``failed/<block_id>.txt`` and the block is marked failed."""
    block_id = block.block_id[1]
    try:
        result = _block_result(spec, block.read_roi, block.write_roi)
        path = _result_path(spec.results_dir, block_id)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **result)
        os.replace(tmp, path)
    except Exception:
        tb = traceback.format_exc()
        logger.error("evaluation block %s (write ROI %s) failed:\n%s", block_id, block.write_roi, tb)
        failed = Path(spec.results_dir).parent / "failed"
        failed.mkdir(exist_ok=True)
        (failed / f"{block_id}.txt").write_text(tb)
        from daisy import BlockStatus

        block.status = BlockStatus.FAILED


def _kind(evaluator) -> str:
    if isinstance(evaluator, InstanceEvaluator):
        return "instance"
    if isinstance(evaluator, BinarySegmentationEvaluator):
        return "binary"
    if isinstance(evaluator, MultiClassEvaluator):
        return "multiclass"
    raise TypeError(
        f"evaluate_blockwise: no blockwise evaluation for {type(evaluator).__name__} "
        "(instance, binary segmentation and multi-class evaluators have one)"
    )


def _scored_roi(kind: str, seg, gt, roi: Roi | None) -> Roi:
    scored = instance_roi(seg, gt) if kind == "instance" else common_roi(seg, gt)
    if roi is None:
        return scored
    roi = Roi(roi.offset, roi.shape)
    zero = Coordinate((0,) * roi.dims)
    if roi.offset % seg.voxel_size != zero or roi.shape % seg.voxel_size != zero:
        raise ValueError(f"roi {roi} is not aligned with the voxel size {seg.voxel_size}")
    if not scored.contains(roi):
        raise ValueError(f"roi {roi} is not inside the scored ROI {scored} of the two arrays")
    return roi


def _merge(kind: str, spec: _Spec, paths: list[Path]):
    """Merge the blocks' results, a few at a time (bounded memory)."""
    if kind == "instance":
        merged: LabelPairs | None = None
        batch: list[LabelPairs] = []
        rows = 0
        for path in paths:
            with np.load(path) as f:
                batch.append(LabelPairs(f["truth_ids"], f["seg_ids"], f["counts"]))
            rows += len(batch[-1].counts)
            if rows >= _MERGE_ROWS:
                merged = merge_label_pairs(([merged] if merged else []) + batch)
                batch, rows = [], len(merged.counts)
        return merge_label_pairs(([merged] if merged else []) + batch)
    if kind == "multiclass":
        total = np.zeros((spec.num_channels, spec.num_channels), np.int64)
        for path in paths:
            with np.load(path) as f:
                total += f["confusion"]
        return total
    per_channel: list[list[BinaryStats]] = [[] for _ in range(spec.num_channels)]
    for path in paths:
        with np.load(path) as f:
            ints, floats = f["ints"], f["floats"]
        for c in range(spec.num_channels):
            fields = dict(zip(_INT_FIELDS, map(int, ints[c])))
            fields.update(zip(_FLOAT_FIELDS, map(float, floats[c])))
            per_channel[c].append(BinaryStats(**fields))
    return [merge_binary_stats(stats) for stats in per_channel]


def _scores(evaluator, kind: str, spec: _Spec, merged) -> EvaluationScores:
    if kind == "instance":
        return InstanceEvaluationScores(metrics_from_table(table_from_pairs(merged)))
    if kind == "multiclass":
        return evaluator.scores_from_metrics(*metrics_from_confusion(merged))
    metrics = [metrics_from_stats(stats) for stats in merged]
    for channel, stats in zip(evaluator.channels, merged):
        far = stats.fp_far + stats.fn_far
        if far:
            logger.warning(
                "blockwise evaluation, channel %r: %d false voxels lie farther than the "
                "context %.4g from the other mask, so hausdorff and the unclipped mean "
                "distances are NaN (the clipped and tolerance metrics are exact); evaluate "
                "with a larger context for them",
                channel, far, spec.exact_radius,
            )
    return evaluator.scores_from_metrics(metrics)


def evaluate_blockwise(
    evaluator,
    segmentation_path: str | Path,
    gt_path: str | Path,
    roi: Roi | None = None,
    num_workers: int = 1,
    block_size: Coordinate | None = None,
    log_dir: str | Path | None = None,
    context: float | None = None,
    task_id: str = "evaluate",
) -> EvaluationScores:
    """``evaluator.evaluate(segmentation_path, gt_path)`` computed block by block (see the
    module docstring for what is exact).

    ``block_size`` is in world units (default `DEFAULT_BLOCK_VOXELS` voxels per axis);
    ``context`` (binary only, world units) is the radius r around each block within which
    distances are exact (default max(clip_distance, tol_distance); smaller is an error).
    """
    import daisy.v2 as daisy

    kind = _kind(evaluator)
    seg = open_array(segmentation_path, "output array")
    gt = open_array(gt_path, "evaluation array")
    scored = _scored_roi(kind, seg, gt, roi)
    vs = seg.voxel_size
    zero = Coordinate((0,) * vs.dims)
    if block_size is None:
        block_size = Coordinate(min(DEFAULT_BLOCK_VOXELS * v, s) for v, s in zip(vs, scored.shape))
    block_size = Coordinate(block_size)
    if len(block_size) != vs.dims or block_size % vs != zero or min(block_size) <= 0:
        raise ValueError(
            f"block_size {block_size} must be a positive multiple of the voxel size {vs}"
        )

    params: dict = {}
    context_size = zero
    if kind == "binary":
        needed = max(evaluator.clip_distance, evaluator.tol_distance)
        radius = needed if context is None else float(context)
        if radius < needed:
            raise ValueError(
                f"context {radius} is smaller than max(clip_distance, tol_distance) = {needed}"
            )
        # the block grown by ceil(r / voxel) voxels per axis holds the ball of radius r
        context_size = Coordinate(int(math.ceil(radius / v - 1e-9)) * v for v in vs)
        params = dict(
            num_channels=len(evaluator.channels),
            tol_distance=evaluator.tol_distance,
            clip_distance=evaluator.clip_distance,
            exact_radius=radius,
        )
    elif kind == "multiclass":
        params = dict(num_channels=len(evaluator.classes))

    temporary = log_dir is None
    base = Path(tempfile.mkdtemp(prefix="dacapo_evaluate_")) if temporary else Path(log_dir)
    task_dir = (base / task_id).absolute()
    results_dir = task_dir / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    spec = _Spec(
        kind=kind,
        segmentation=str(Path(segmentation_path).absolute()),
        ground_truth=str(Path(gt_path).absolute()),
        roi_offset=tuple(scored.offset),
        roi_shape=tuple(scored.shape),
        results_dir=str(results_dir),
        **params,
    )
    config = {**asdict(spec), "block_size": list(block_size), "context": list(context_size)}
    config.pop("results_dir")
    config_path = task_dir / "config.json"
    if config_path.exists() and json.loads(config_path.read_text()) != json.loads(
        json.dumps(config)
    ) and any(results_dir.iterdir()):
        raise ValueError(
            f"{task_dir} holds block results of another evaluation "
            f"({config_path.read_text()}); use another log_dir/task_id or delete it"
        )
    config_path.write_text(json.dumps(config, indent=2))
    shutil.rmtree(task_dir / "failed", ignore_errors=True)

    block_read = Roi(zero, block_size + context_size * 2)
    block_write = Roi(context_size, block_size)
    total_read = scored.grow(context_size, context_size)
    graph = daisy.BlockwiseDependencyGraph(
        task_id, block_read, block_write, False, "shrink", total_read_roi=total_read
    )
    blocks = {b.block_id[1]: b.write_roi for b, _ in graph.enumerate_all_dependencies()}
    todo = [i for i in blocks if not _result_path(str(results_dir), i).exists()]
    logger.info(
        "blockwise %s evaluation of %s: %d blocks of %s (%d to do), context %s, %d workers",
        kind, scored, len(blocks), block_size, len(todo), context_size, num_workers,
    )
    try:
        if todo:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r"Task\(check_function")
                task = daisy.Task(
                    task_id,
                    total_read,
                    block_read,
                    block_write,
                    process_function=functools.partial(_run_block, spec),
                    check_function=functools.partial(_is_done, str(results_dir)),
                    read_write_conflict=False,
                    fit="shrink",
                    max_workers=max(1, num_workers),
                    max_retries=2,
                    tracking_path=False,
                )
            from daisy import logging as daisy_logging

            previous = daisy_logging.get_log_basedir()
            daisy_logging.set_log_basedir(task_dir / "daisy")
            try:
                daisy.run_blockwise(
                    task,
                    multiprocessing=num_workers > 1,
                    progress=False,
                    summary=False,
                    host="127.0.0.1",
                )
            except RuntimeError as e:  # daisy raises when it abandons the task
                logger.error("daisy abandoned the evaluation: %s", e)
            finally:
                daisy_logging.set_log_basedir(previous)
        paths = [_result_path(str(results_dir), i) for i in sorted(blocks)]
        missing = [i for i, p in zip(sorted(blocks), paths) if not p.exists()]
        if missing:
            error = next(
                (
                    (task_dir / "failed" / f"{i}.txt").read_text()
                    for i in missing
                    if (task_dir / "failed" / f"{i}.txt").exists()
                ),
                None,
            )
            raise RuntimeError(
                f"blockwise evaluation: {len(missing)} of {len(blocks)} blocks failed "
                f"(first: block {missing[0]}, write ROI {blocks[missing[0]]})"
                + (f":\n{error.rstrip()}" if error else "")
                + ("" if temporary else f"\nre-run with log_dir={base} to retry only them")
            )
        return _scores(evaluator, kind, spec, _merge(kind, spec, paths))
    finally:
        if temporary:
            shutil.rmtree(base, ignore_errors=True)
