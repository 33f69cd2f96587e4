"""evaluate_blockwise == evaluator.evaluate (in memory) for every metric of the instance,
binary and multi-class evaluators, 2D and 3D, anisotropic voxels, blocks that do not divide
the volume; the binary distance metrics with a context (exact for clipped/tolerance, NaN
for the unclipped when a distance exceeds it); resume; a sub-ROI; two daisy workers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi
from funlib.persistence import prepare_ds
from scipy import ndimage

from dacapo.blockwise.options import BlockwiseOptions
from dacapo.experiments.tasks.evaluators import (
    BinarySegmentationEvaluator,
    InstanceEvaluator,
    MultiClassEvaluator,
    evaluate_blockwise,
)
from dacapo.ops.binary_metrics import BINARY_METRIC_NAMES

UNCLIPPED = (
    "hausdorff",
    "mean_false_positive_distance",
    "mean_false_negative_distance",
    "mean_false_distance",
)


def _write(path, data: np.ndarray, voxel_size, offset=None, channels: bool = False) -> str:
    dims = len(voxel_size)
    offset = Coordinate((0,) * dims) if offset is None else Coordinate(offset)
    array = prepare_ds(
        str(path),
        shape=data.shape,
        offset=offset,
        voxel_size=Coordinate(voxel_size),
        axis_names=(["c^"] if channels else []) + ["z", "y", "x"][-dims:],
        dtype=data.dtype,
        chunk_shape=data.shape[:1] + (8,) * dims if channels else (8,) * dims,
    )
    array[array.roi] = data
    return str(path)


def _blobs(shape, num, seed, large_ids=True) -> np.ndarray:
    """Voronoi cells of ``num`` random seeds cut at a radius, ids >= 100000 (sparse)."""
    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, np.uint64)
    points = tuple(rng.integers(0, s, num) for s in shape)
    ids = rng.choice(10**9, num, replace=False).astype(np.uint64) + 100000
    seeds[points] = ids if large_ids else np.arange(1, num + 1)
    dist, idx = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    labels = seeds[tuple(idx)]
    labels[dist > max(shape) / 4] = 0
    return labels


def _perturbed(labels: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    seg = np.roll(labels, 1, axis=0).copy()
    ids = np.unique(labels)[1:]
    seg[seg == ids[0]] = ids[1]  # a merge
    half = np.arange(labels.shape[-1]) < labels.shape[-1] // 2
    seg[(seg == ids[2]) & half] = 7  # a split
    noise = rng.random(labels.shape) < 0.02
    seg[noise] = rng.choice(np.unique(seg), int(noise.sum()))
    return seg


def _assert_same(blockwise, in_memory, skip=()) -> None:
    assert type(blockwise) is type(in_memory)
    criteria = in_memory.criteria
    assert criteria
    for name in criteria:
        if any(name.endswith(s) for s in skip):
            continue
        a, b = getattr(blockwise, name), getattr(in_memory, name)
        if math.isnan(b):
            assert math.isnan(a), f"{name}: {a} != NaN"
        else:
            assert a == pytest.approx(b, rel=1e-6, abs=1e-9), name


@pytest.mark.parametrize(
    "shape,voxel_size,block",
    [((17, 26, 23), (8, 4, 4), (5, 9, 10)), ((45, 38), (2, 3), (13, 16))],
)
def test_instance_blockwise_equals_in_memory(tmp_path, shape, voxel_size, block):
    truth = _blobs(shape, 12, seed=1)
    seg = _perturbed(truth, seed=2)
    sp = _write(tmp_path / "a.zarr" / "seg", seg, voxel_size)
    gp = _write(tmp_path / "a.zarr" / "gt", truth, voxel_size)
    evaluator = InstanceEvaluator()
    expected = evaluator.evaluate(sp, gp)
    assert 0 < expected.voi and expected.ap50 > 0  # a non-trivial case
    block_size = Coordinate(block) * Coordinate(voxel_size)
    got = evaluate_blockwise(evaluator, sp, gp, block_size=block_size)
    _assert_same(got, expected)


def _binary_case(tmp_path, shape, voxel_size, seed):
    """Two channels of balls: test shifted/dilated, one object missed far from the rest."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((2, *shape), np.uint8)
    for c in range(2):
        truth[c] = _blobs(shape, 6, seed=seed + c, large_ids=False) % 2 == 1
    test = np.stack([ndimage.binary_dilation(np.roll(t, 1, axis=0)) for t in truth])
    test = test.astype(np.uint8)
    test[0] ^= (rng.random(shape) < 0.01).astype(np.uint8)
    sp = _write(tmp_path / "b.zarr" / "test", test, voxel_size, channels=True)
    gp = _write(tmp_path / "b.zarr" / "gt", truth, voxel_size, channels=True)
    return sp, gp


@pytest.mark.parametrize(
    "shape,voxel_size,block",
    [((16, 30, 28), (8, 4, 4), (6, 11, 9)), ((40, 44), (3, 2), (15, 12))],
)
def test_binary_blockwise_equals_in_memory(tmp_path, shape, voxel_size, block):
    sp, gp = _binary_case(tmp_path, shape, voxel_size, seed=3)
    evaluator = BinarySegmentationEvaluator(
        clip_distance=10.3, tol_distance=6.1, channels=["a", "b"]
    )
    expected = evaluator.evaluate(sp, gp)
    block_size = Coordinate(block) * Coordinate(voxel_size)
    # context r >= every false distance: all 21 metrics exact
    far = max(expected.a__hausdorff, expected.b__hausdorff)
    got = evaluate_blockwise(evaluator, sp, gp, block_size=block_size, context=far + 1)
    _assert_same(got, expected)
    # default context max(clip, tol) < hausdorff: clipped / tolerance metrics still exact
    assert far > 10.3
    got = evaluate_blockwise(evaluator, sp, gp, block_size=block_size)
    _assert_same(got, expected, skip=UNCLIPPED)
    for channel in ("a", "b"):
        if getattr(expected, f"{channel}__hausdorff") > 10.3:
            assert math.isnan(getattr(got, f"{channel}__hausdorff"))
            assert math.isnan(getattr(got, f"{channel}__mean_false_distance"))
    assert len([n for n in expected.criteria if n.startswith("a__")]) == len(BINARY_METRIC_NAMES)


def test_binary_context_smaller_than_clip_is_refused(tmp_path):
    sp, gp = _binary_case(tmp_path, (8, 9, 10), (2, 1, 1), seed=0)
    evaluator = BinarySegmentationEvaluator(clip_distance=5.0, tol_distance=2.0, channels=["a", "b"])
    with pytest.raises(ValueError, match="context"):
        evaluate_blockwise(evaluator, sp, gp, context=3.0)


def test_multiclass_blockwise_equals_in_memory(tmp_path):
    rng = np.random.default_rng(5)
    truth = (_blobs((14, 21, 19), 10, seed=5, large_ids=False) % 4).astype(np.uint8)
    test = np.roll(truth, 1, axis=1)
    test[rng.random(test.shape) < 0.05] = 2
    vs = (5, 2, 2)
    sp = _write(tmp_path / "c.zarr" / "test", test, vs)
    gp = _write(tmp_path / "c.zarr" / "gt", truth, vs)
    evaluator = MultiClassEvaluator(classes=["bg", "x", "y", "z"])
    expected = evaluator.evaluate(sp, gp)
    got = evaluate_blockwise(evaluator, sp, gp, block_size=Coordinate(4, 7, 6) * Coordinate(vs))
    _assert_same(got, expected)


def test_sub_roi_and_larger_gt(tmp_path):
    """The scored ROI is inside the GT (binary: common ROI = the output's) and a given sub-ROI:
    context voxels outside it are 0, as the in-memory evaluator sees only the ROI."""
    vs = Coordinate(4, 2, 2)
    truth = np.zeros((1, 20, 24, 24), np.uint8)
    truth[0] = _blobs((20, 24, 24), 8, seed=7, large_ids=False) > 0
    test = np.roll(truth[:, 3:17, 4:20, 4:20], 1, axis=2)
    sp = _write(tmp_path / "d.zarr" / "test", test, vs, offset=Coordinate(3, 4, 4) * vs, channels=True)
    gp = _write(tmp_path / "d.zarr" / "gt", truth, vs, channels=True)
    evaluator = BinarySegmentationEvaluator(clip_distance=7.0, tol_distance=3.0, channels=["m"])
    expected = evaluator.evaluate(sp, gp)
    got = evaluate_blockwise(evaluator, sp, gp, block_size=vs * 5, context=100.0)
    _assert_same(got, expected)

    roi = Roi(Coordinate(5, 6, 7) * vs, Coordinate(9, 10, 9) * vs)
    cropped_s = _write(tmp_path / "d.zarr" / "ts", test[:, 2:11, 2:12, 3:12], vs, roi.offset, True)
    cropped_g = _write(tmp_path / "d.zarr" / "gs", truth[:, 5:14, 6:16, 7:16], vs, roi.offset, True)
    expected = evaluator.evaluate(cropped_s, cropped_g)
    got = evaluate_blockwise(evaluator, sp, gp, roi=roi, block_size=vs * 4, context=100.0)
    _assert_same(got, expected)


def test_resume_uses_the_saved_blocks(tmp_path):
    truth = _blobs((12, 20, 20), 8, seed=9)
    seg = _perturbed(truth, seed=10)
    vs = (2, 1, 1)
    sp = _write(tmp_path / "e.zarr" / "seg", seg, vs)
    gp = _write(tmp_path / "e.zarr" / "gt", truth, vs)
    evaluator = InstanceEvaluator()
    log_dir = tmp_path / "logs"
    block_size = Coordinate(5, 7, 7) * Coordinate(vs)
    logs = BlockwiseOptions(log_dir=log_dir)
    first = evaluate_blockwise(evaluator, sp, gp, block_size=block_size, options=logs)
    results = sorted((log_dir / "evaluate" / "results").glob("*.npz"))
    assert len(results) == 3 * 3 * 3
    kept = {p: p.stat().st_mtime_ns for p in results[1:]}
    results[0].unlink()  # as if the run had been killed before this block
    again = evaluate_blockwise(evaluator, sp, gp, block_size=block_size, options=logs)
    _assert_same(again, first)
    assert results[0].exists()
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())  # not recomputed
    with pytest.raises(ValueError, match="another evaluation"):
        evaluate_blockwise(evaluator, sp, gp, block_size=block_size * 2, options=logs)


def test_two_workers(tmp_path):
    truth = _blobs((16, 24, 24), 10, seed=11)
    seg = _perturbed(truth, seed=12)
    vs = (4, 2, 2)
    sp = _write(tmp_path / "f.zarr" / "seg", seg, vs)
    gp = _write(tmp_path / "f.zarr" / "gt", truth, vs)
    evaluator = InstanceEvaluator()
    got = evaluate_blockwise(
        evaluator, sp, gp, block_size=Coordinate(8, 12, 12) * Coordinate(vs),
        options=BlockwiseOptions(num_workers=2),
    )
    _assert_same(got, evaluator.evaluate(sp, gp))


def test_bad_block_is_reported(tmp_path):
    """Class ids beyond the classes in one block: an error naming the array, not a score."""
    truth = np.zeros((8, 8, 8), np.uint8)
    test = truth.copy()
    test[6, 6, 6] = 9
    sp = _write(tmp_path / "g.zarr" / "test", test, (1, 1, 1))
    gp = _write(tmp_path / "g.zarr" / "gt", truth, (1, 1, 1))
    evaluator = MultiClassEvaluator(classes=["bg", "fg"])
    with pytest.raises(RuntimeError, match="output array: class ids"):
        evaluate_blockwise(evaluator, sp, gp, block_size=Coordinate(4, 4, 4))
