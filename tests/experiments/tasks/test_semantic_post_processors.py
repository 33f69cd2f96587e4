"""Threshold / argmax post-processors: in memory and blockwise on zarr (1 and 2 workers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from funlib.geometry import Coordinate
from funlib.persistence import Array, prepare_ds

from dacapo.blockwise import BlockwiseOptions
from dacapo.experiments.tasks.distance_task import DISTANCE_THRESHOLDS
from dacapo.experiments.tasks.inner_distance_task import INNER_DISTANCE_THRESHOLDS
from dacapo.experiments.tasks.post_processors import (
    ArgmaxPostProcessor,
    ArgmaxPostProcessorParameters,
    ThresholdPostProcessor,
    ThresholdPostProcessorParameters,
)

VOXEL = Coordinate(8, 4, 4)
OFFSET = Coordinate(16, 8, 4)


def _zarr(path: Path, data: np.ndarray, voxel_size=VOXEL, offset=OFFSET) -> str:
    arr = prepare_ds(
        str(path),
        data.shape,
        offset=offset,
        voxel_size=voxel_size,
        axis_names=(["c^"] if data.ndim > len(voxel_size) else []) + ["z", "y", "x"][-len(voxel_size) :],
        dtype=data.dtype,
        chunk_shape=tuple(min(s, 7) for s in data.shape),
        mode="w",
    )
    arr[arr.roi] = data
    return str(path)


def _prediction(shape=(3, 13, 18, 11), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def test_parameters_frozen_hashable_readable():
    p = ThresholdPostProcessorParameters(id=2, threshold=0.25)
    assert str(p) == "ThresholdPostProcessorParameters(threshold=0.25)"
    assert hash(p) == hash(ThresholdPostProcessorParameters(id=2, threshold=0.25))
    with pytest.raises(AttributeError):
        p.threshold = 1.0  # type: ignore[misc]
    a = ArgmaxPostProcessorParameters(id=0)
    assert {a: 1}[ArgmaxPostProcessorParameters(id=0)] == 1
    assert str(a) == "ArgmaxPostProcessorParameters()"


def test_sweeps_fit_the_outputs():
    """Distance thresholds straddle 0 inside tanh's range; inner distances are in (0, 1)."""
    params = list(ThresholdPostProcessor(DISTANCE_THRESHOLDS).enumerate_parameters())
    assert [p.id for p in params] == list(range(len(DISTANCE_THRESHOLDS)))
    values = [p.threshold for p in params]
    assert min(values) < 0 < max(values) and all(-1 < v < 1 for v in values)
    assert 0.0 in values
    inner = [p.threshold for p in ThresholdPostProcessor(INNER_DISTANCE_THRESHOLDS).enumerate_parameters()]
    assert all(0 < v < 1 for v in inner)
    assert len(list(ArgmaxPostProcessor().enumerate_parameters())) == 1


def test_threshold_in_memory(tmp_path):
    pred = _prediction()
    pp = ThresholdPostProcessor([-0.5, 0.0, 0.5])
    pp.set_prediction(Array(pred, offset=OFFSET, voxel_size=VOXEL))
    for p in pp.enumerate_parameters():
        out = pp.process(p, tmp_path / "out.zarr" / f"t{p.id}")
        assert out.dtype == np.uint8 and out.roi.offset == OFFSET and out.voxel_size == VOXEL
        np.testing.assert_array_equal(out.to_ndarray(out.roi), pred > p.threshold)


def test_threshold_channel_offset_and_single_channel(tmp_path):
    pred = _prediction((4, 6, 7, 5))
    hot = ThresholdPostProcessor([0.1], channel_offset=2, num_channels=2)
    hot.set_prediction(Array(pred, offset=OFFSET, voxel_size=VOXEL))
    out = hot.process(next(iter(hot.enumerate_parameters())), tmp_path / "o.zarr" / "hot")
    np.testing.assert_array_equal(out.to_ndarray(out.roi), pred[2:4] > 0.1)
    # a prediction without channel axis gives one output channel, stored without a channel
    # axis (the layout convention of every output)
    single = ThresholdPostProcessor([0.0])
    single.set_prediction(Array(pred[0], offset=OFFSET, voxel_size=VOXEL))
    out = single.process(next(iter(single.enumerate_parameters())), tmp_path / "o.zarr" / "one")
    assert out.shape == pred[0].shape
    np.testing.assert_array_equal(out.to_ndarray(out.roi), pred[0] > 0)
    with pytest.raises(ValueError, match="channel"):
        bad = ThresholdPostProcessor([0.0], channel_offset=3, num_channels=2)
        bad.set_prediction(Array(pred, offset=OFFSET, voxel_size=VOXEL))
        bad.process(next(iter(bad.enumerate_parameters())), tmp_path / "o.zarr" / "bad")


# Each blockwise run starts worker processes (seconds each): few runs, few blocks.


def test_threshold_blockwise_matches_in_memory(tmp_path):
    pred = _prediction((3, 9, 10, 11))
    path = _zarr(tmp_path / "pred.zarr" / "p", pred)
    pp = ThresholdPostProcessor([-0.25, 0.3], channel_offset=1)
    pp.set_prediction(path)
    block = Coordinate(5, 8, 6) * VOXEL  # ROI not a multiple of the block size: 8 blocks
    p = list(pp.enumerate_parameters())[1]
    out = pp.process(p, tmp_path / "out.zarr" / "t", BlockwiseOptions(num_workers=2),
                     block_size=block)
    np.testing.assert_array_equal(out.to_ndarray(out.roi), pred[1:] > p.threshold)
    # processing a new prediction into the same output recomputes every block
    pred2 = -pred
    pp.set_prediction(_zarr(tmp_path / "pred.zarr" / "p2", pred2))
    out = pp.process(p, tmp_path / "out.zarr" / "t", BlockwiseOptions(num_workers=1),
                     block_size=block)
    np.testing.assert_array_equal(out.to_ndarray(out.roi), pred2[1:] > p.threshold)


@pytest.mark.parametrize("num_workers", [1])
def test_argmax_blockwise_and_in_memory(tmp_path, num_workers):
    pred = _prediction((4, 9, 10, 12), seed=3)
    expected = np.argmax(pred, axis=0)
    mem = ArgmaxPostProcessor()
    mem.set_prediction(Array(pred, offset=OFFSET, voxel_size=VOXEL))
    params = next(iter(mem.enumerate_parameters()))
    out_mem = mem.process(params, tmp_path / "out.zarr" / "mem")
    blk = ArgmaxPostProcessor()
    blk.set_prediction(_zarr(tmp_path / "pred.zarr" / "p", pred))
    out_blk = blk.process(
        params, tmp_path / "out.zarr" / "blk", BlockwiseOptions(num_workers=num_workers),
        block_size=Coordinate(4, 4, 4) * VOXEL
    )
    for out in (out_mem, out_blk):
        assert out.dtype == np.uint8 and out.channel_dims == 0 and out.roi.offset == OFFSET
        np.testing.assert_array_equal(out.to_ndarray(out.roi), expected)


def test_argmax_many_classes_uses_uint16(tmp_path):
    pred = np.random.default_rng(0).random((300, 3, 4)).astype(np.float32)
    pp = ArgmaxPostProcessor()
    pp.set_prediction(Array(pred, offset=(0, 0), voxel_size=(2, 2), axis_names=["c^", "y", "x"]))
    out = pp.process(ArgmaxPostProcessorParameters(id=0), tmp_path / "o.zarr" / "a")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out.to_ndarray(out.roi), np.argmax(pred, axis=0))


def test_2d_threshold_blockwise(tmp_path):
    pred = np.random.default_rng(1).uniform(0, 1, (2, 17, 23)).astype(np.float32)
    path = _zarr(tmp_path / "p.zarr" / "p", pred, voxel_size=Coordinate(4, 4), offset=Coordinate(0, 0))
    pp = ThresholdPostProcessor([0.5])
    pp.set_prediction(path)
    out = pp.process(ThresholdPostProcessorParameters(id=0, threshold=0.5), tmp_path / "o.zarr" / "t",
                     BlockwiseOptions(num_workers=1), block_size=Coordinate(32, 32))
    np.testing.assert_array_equal(out.to_ndarray(out.roi), pred > 0.5)
