"""Tests for dacapo.blockwise.runner (daisy 2.0 blockwise processing)."""

from __future__ import annotations

import functools
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi
from funlib.persistence import open_ds, prepare_ds

from dacapo.blockwise import BlockInfo, BlockwiseError, BlockwiseOptions, run_blockwise
from dacapo.blockwise.launch import worker_restarts
from dacapo.io.arrays import prepare_zarr

VOXEL_3D = Coordinate(8, 4, 4)
OFFSET_3D = Coordinate(80, 40, 40)
SHAPE_3D = (40, 60, 60)
BLOCK_3D = Coordinate(80, 80, 80)  # (10, 20, 20) voxels -> 4 x 3 x 3 blocks


# --- process functions (module level, so workers can unpickle them) ---------


def _box_valid(a: np.ndarray) -> np.ndarray:
    """3^n box mean over the spatial axes, 'valid' region only (crops 1 voxel/side)."""
    a = a.astype(np.float32)
    nd = a.ndim
    out = np.zeros(tuple(s - 2 for s in a.shape), np.float32)
    for shift in np.ndindex(*(3,) * nd):
        sl = tuple(slice(k, k + s - 2) for k, s in zip(shift, a.shape))
        out += a[sl]
    return out / np.float32(3**nd)


def box_mean(raw: np.ndarray, block: BlockInfo) -> np.ndarray:
    """Context-dependent process: box mean of the read ROI, cropped to the write ROI."""
    assert isinstance(block, BlockInfo)
    assert raw.shape == tuple(block.read_roi.shape / block.voxel_size)
    return _box_valid(raw)


def box_mean_channels(raw: np.ndarray, block: BlockInfo) -> np.ndarray:
    """Per-channel box mean for a channels-first input."""
    return np.stack([_box_valid(c) for c in raw])


def flaky_box_mean(raw: np.ndarray, block: BlockInfo, flag: str, fail_begin: int) -> np.ndarray:
    """Like `box_mean`, but fails for blocks in the first z-slab while ``flag`` exists."""
    if os.path.exists(flag) and block.write_roi.begin[0] == fail_begin:
        raise RuntimeError(f"injected failure in block {block.block_id}")
    return box_mean(raw, block)


def reference(data: np.ndarray, channel_dims: int = 0) -> np.ndarray:
    """The same computation applied to the whole (zero-padded) array at once."""
    pad = [(0, 0)] * channel_dims + [(1, 1)] * (data.ndim - channel_dims)
    padded = np.pad(data, pad)
    if channel_dims:
        return np.stack([_box_valid(c) for c in padded])
    return _box_valid(padded)


# --- fixtures ----------------------------------------------------------------


def _make_input(path: Path, data: np.ndarray, offset, voxel_size, chunk_shape) -> str:
    arr = prepare_ds(
        str(path),
        data.shape,
        offset=offset,
        voxel_size=voxel_size,
        dtype=data.dtype,
        chunk_shape=chunk_shape,
        mode="w",
    )
    arr[arr.roi] = data
    return str(path)


@pytest.fixture
def raw3d(tmp_path):
    data = np.random.default_rng(0).integers(0, 255, SHAPE_3D, dtype=np.uint8)
    path = _make_input(tmp_path / "in.zarr" / "raw", data, OFFSET_3D, VOXEL_3D, (16, 16, 16))
    return path, data


def _run_3d(tmp_path: Path, raw_path: str, name: str, **kwargs):
    roi = open_ds(raw_path).roi
    out_path = tmp_path / "out.zarr" / name
    prepare_zarr(out_path, roi, VOXEL_3D, np.float32, write_size=BLOCK_3D)
    kwargs.setdefault("log_dir", tmp_path / "logs" / name)
    kwargs.setdefault("progress", False)
    process = kwargs.pop("process", box_mean)
    result = run_blockwise(
        process,
        {"raw": raw_path},
        out_path,
        BLOCK_3D,
        context=VOXEL_3D,
        options=BlockwiseOptions(**kwargs),
    )
    out = open_ds(str(out_path))
    return result, out[out.roi]


def _tree_state(path: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(path.rglob("*"))
    }


# --- tests -------------------------------------------------------------------


def test_3d_matches_reference_and_is_worker_count_independent(tmp_path, raw3d):
    raw_path, data = raw3d
    expected = reference(data)
    res1, out1 = _run_3d(tmp_path, raw_path, "w1", num_workers=1)
    res2, out2 = _run_3d(tmp_path, raw_path, "w2", num_workers=2)
    assert (res1.total, res1.processed, res1.skipped, res1.failed) == (36, 36, 0, [])
    assert (res2.total, res2.processed, res2.skipped, res2.failed) == (36, 36, 0, [])
    assert out1.dtype == np.float32
    np.testing.assert_array_equal(out1, out2)
    np.testing.assert_array_equal(out1, expected)
    # a second run finds every block done
    res3, out3 = _run_3d(tmp_path, raw_path, "w2", num_workers=2)
    assert (res3.processed, res3.skipped) == (0, 36)
    np.testing.assert_array_equal(out3, expected)


def test_2d_with_channels_and_sub_roi(tmp_path):
    voxel = Coordinate(4, 4)
    data = np.random.default_rng(1).random((2, 50, 70), dtype=np.float32)
    raw_path = _make_input(tmp_path / "in.zarr" / "raw", data, (20, 8), voxel, (2, 25, 35))
    raw_roi = open_ds(raw_path).roi
    out_path = tmp_path / "out.zarr" / "pred"
    block = Coordinate(48, 48)
    prepare_zarr(out_path, raw_roi, voxel, np.float32, num_channels=2, write_size=block)
    # process a sub-ROI (block-aligned with the output) only
    roi = Roi(raw_roi.offset, (144, 192))
    result = run_blockwise(
        box_mean_channels,
        {"raw": raw_path},
        out_path,
        block,
        context=voxel,
        options=BlockwiseOptions(num_workers=2, log_dir=tmp_path / "logs", progress=False),
        roi=roi,
    )
    assert (result.total, result.processed, result.skipped) == (12, 12, 0)
    out = open_ds(str(out_path))
    assert out.shape == (2, 50, 70)
    written = out[roi]
    expected = reference(data, channel_dims=1)[:, :36, :48]
    np.testing.assert_array_equal(written, expected)
    # outside the ROI nothing was written
    assert not out[out.roi][:, 36:, :].any() and not out[out.roi][:, :, 48:].any()


def test_partial_run_then_resume(tmp_path, raw3d):
    raw_path, data = raw3d
    flag = tmp_path / "fail.flag"
    flag.touch()
    process = functools.partial(flaky_box_mean, flag=str(flag), fail_begin=OFFSET_3D[0])
    with pytest.raises(BlockwiseError) as info:
        _run_3d(tmp_path, raw_path, "resume", process=process, num_workers=2)
    err = info.value
    failed = err.failed
    assert len(failed) == 9  # the first z-slab: 3 x 3 blocks
    assert all(b.write_roi.begin[0] == OFFSET_3D[0] for b in failed)
    msg = str(err)
    assert "9 of 36 blocks failed" in msg
    for b in failed:
        assert f"block {b.block_id} (write ROI {b.write_roi})" in msg
    assert "injected failure" in msg
    assert err.result is not None
    assert (err.result.processed, err.result.skipped) == (27, 0)

    flag.unlink()
    result, out = _run_3d(tmp_path, raw_path, "resume", process=process, num_workers=2)
    assert (result.total, result.processed, result.skipped, result.failed) == (36, 9, 27, [])
    np.testing.assert_array_equal(out, reference(data))


@pytest.mark.parametrize(
    "template", ["sh -c '{command}'", "bash -c {quoted_command}"], ids=["sh", "bash"]
)
def test_worker_command_template(tmp_path, raw3d, template):
    raw_path, data = raw3d
    result, out = _run_3d(tmp_path, raw_path, "cmd", num_workers=2, worker_command=template)
    assert (result.total, result.processed, result.failed) == (36, 36, [])
    np.testing.assert_array_equal(out, reference(data))


def test_failing_worker_command_raises(tmp_path, raw3d):
    raw_path, _ = raw3d
    launches = tmp_path / "launches.txt"
    command = f"sh -c 'echo launched >> {launches}; exit 1' {{command}}"
    with pytest.raises(BlockwiseError, match="36 of 36 blocks were not completed") as info:
        _run_3d(tmp_path, raw_path, "bad", num_workers=1, worker_command=command)
    assert "exited with code 1" in str(info.value)
    assert info.value.result.processed == 0
    # the first launch and worker_restarts(1) = 2 more, then the job is abandoned
    assert worker_restarts(1) == 2
    assert launches.read_text().splitlines() == ["launched"] * 3


def test_readonly_input_and_clean_cwd(tmp_path, raw3d, monkeypatch):
    raw_path, data = raw3d
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    container = tmp_path / "in.zarr"
    before = _tree_state(container)
    paths = [container, *container.rglob("*")]
    for p in paths:
        mode = p.stat().st_mode
        p.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        # no log_dir: the default lives next to the output container, not in the CWD
        result, out = _run_3d(tmp_path, raw_path, "ro", num_workers=2, log_dir=None)
    finally:
        for p in paths:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    assert result.processed == 36
    np.testing.assert_array_equal(out, reference(data))
    assert _tree_state(container) == before
    assert list(cwd.iterdir()) == []
    assert (tmp_path / "out.zarr.blockwise" / "ro" / "dacapo" / "done").is_dir()


def test_prepare_output_reuse_and_mismatch(tmp_path):
    roi = Roi((0, 0, 0), (80, 80, 80))
    path = tmp_path / "out.zarr" / "x"
    arr = prepare_zarr(path, roi, VOXEL_3D, np.uint8, write_size=Coordinate(40, 40, 40))
    assert arr.roi == roi
    assert arr._source_data.chunks == (5, 10, 10)
    arr[roi] = np.full(arr.shape, 7, np.uint8)
    again = prepare_zarr(path, roi, VOXEL_3D, np.uint8, write_size=Coordinate(40, 40, 40))
    assert (again[roi] == 7).all()  # reused, not wiped
    with pytest.raises(ValueError, match="dtype"):
        prepare_zarr(path, roi, VOXEL_3D, np.float32)
    with pytest.raises(ValueError, match="shape"):
        prepare_zarr(path, Roi((0, 0, 0), (160, 80, 80)), VOXEL_3D, np.uint8)
    with pytest.raises(ValueError, match="voxel size"):
        prepare_zarr(path, roi, Coordinate(8, 8, 2), np.uint8)


def test_changed_layout_with_existing_markers_is_refused(tmp_path, raw3d):
    raw_path, _ = raw3d
    # pretend every block of a first run is done (ids are < 1000 here), so the
    # first call records its configuration without starting any worker
    done = tmp_path / "logs" / "cfg" / "dacapo" / "done"
    done.mkdir(parents=True)
    for i in range(1000):
        (done / str(i)).touch()
    result, _ = _run_3d(tmp_path, raw_path, "cfg", num_workers=1)
    assert (result.total, result.processed, result.skipped) == (36, 0, 36)
    out_path = tmp_path / "out.zarr" / "cfg"
    with pytest.raises(ValueError, match="different configuration"):
        run_blockwise(
            box_mean,
            {"raw": raw_path},
            out_path,
            Coordinate(40, 40, 40),
            context=VOXEL_3D,
            options=BlockwiseOptions(num_workers=1, log_dir=tmp_path / "logs" / "cfg",
                                     progress=False),
        )


def test_parallel_run_refuses_blocks_sharing_chunks(tmp_path, raw3d):
    raw_path, _ = raw3d
    roi = open_ds(raw_path).roi
    out_path = tmp_path / "out.zarr" / "big_chunks"
    prepare_zarr(out_path, roi, VOXEL_3D, np.float32, write_size=BLOCK_3D)
    with pytest.raises(ValueError, match="aligned to the output chunks"):
        run_blockwise(
            box_mean,
            {"raw": raw_path},
            out_path,
            Coordinate(40, 40, 40),
            options=BlockwiseOptions(num_workers=2, log_dir=tmp_path / "logs", progress=False),
        )


@pytest.mark.parametrize("channels", [0, 2])
def test_direct_read_equals_funlib_padded_read(tmp_path, channels):
    """The direct zarr read (`read_array`, what the runner, the evaluators and prediction
    use) equals funlib's ``to_ndarray`` (padding outside the array), inside, across the
    border and fully outside, for fill values 0 and 7."""
    from dacapo.io.arrays import read_array, read_padded

    rng = np.random.default_rng(channels)
    shape = ((channels,) if channels else ()) + (6, 7, 9)
    arr = prepare_ds(str(tmp_path / "a.zarr" / "x"), shape, offset=(4, 2, 2),
                     voxel_size=(4, 2, 2), dtype=np.float32, mode="w",
                     axis_names=(["c^"] if channels else []) + ["z", "y", "x"])
    arr[arr.roi] = rng.random(shape).astype(np.float32)
    arr = open_ds(str(tmp_path / "a.zarr" / "x"))
    for roi in [Roi((8, 4, 6), (8, 6, 4)), Roi((0, 0, 0), (16, 10, 30)),
                Roi((20, 12, 16), (12, 8, 8)), Roi((100, 100, 100), (8, 4, 4))]:
        for fill in (0, 7):
            expected = arr.to_ndarray(roi, fill_value=fill)
            got = read_array(arr, roi, fill)
            assert got.shape == expected.shape and got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected)
        # the same function on an in-memory copy (training's Volume): equal, never a view
        in_memory = np.asarray(arr._source_data[...])
        got = read_padded(in_memory, arr.roi, arr.voxel_size, roi, fill)
        np.testing.assert_array_equal(got, expected)
        assert not np.shares_memory(got, in_memory)


def _zarr(path, data, chunks):
    arr = prepare_ds(str(path), data.shape, offset=(0,) * data.ndim, voxel_size=(1,) * data.ndim,
                     dtype=data.dtype, chunk_shape=chunks, mode="w")
    arr[arr.roi] = data
    return open_ds(str(path))


def _ones(raw: np.ndarray, block: BlockInfo) -> np.ndarray:
    return np.full(tuple(block.write_roi.shape / block.voxel_size), block.block_id + 1, np.uint16)


def test_two_workers_when_the_roi_is_smaller_than_a_block_on_one_axis(tmp_path):
    # prepare_zarr clips chunks to the ROI: (10, 30, 8) with blocks (10, 10, 16) voxels;
    # axis 2 has one block only, so no two blocks share a chunk
    raw = _zarr(tmp_path / "in.zarr" / "raw", np.zeros((10, 30, 8), np.uint8), (10, 30, 8))
    out = tmp_path / "out.zarr" / "o"
    block = Coordinate(10, 10, 16)
    prepare_zarr(out, raw.roi, Coordinate(1, 1, 1), np.uint16, write_size=block)
    result = run_blockwise(functools.partial(_ones), {"raw": str(tmp_path / "in.zarr" / "raw")},
                           out, block, options=BlockwiseOptions(num_workers=2,
                                                                log_dir=tmp_path / "logs",
                                                                progress=False))
    assert (result.total, result.processed) == (3, 3)
    data = open_ds(str(out))[raw.roi]
    assert (data > 0).all() and len(np.unique(data)) == 3
    for y in range(0, 30, 10):  # one block per y-slab, each written whole
        assert len(np.unique(data[:, y : y + 10, :])) == 1


def _block_ids(raw: np.ndarray, block: BlockInfo) -> np.ndarray:
    return np.full(tuple(block.write_roi.shape / block.voxel_size), block.block_id + 1, np.uint16)


def test_an_output_created_anew_is_not_taken_as_done(tmp_path):
    """Done-markers belong to the array they were written for: after the output is deleted
    and created again, a re-run with the same log_dir processes every block (before: every
    block skipped, an all-zero output, silently)."""
    raw = _zarr(tmp_path / "in.zarr" / "raw", np.zeros((8, 16, 16), np.uint8), (8, 16, 16))
    out = tmp_path / "out.zarr" / "o"
    block = Coordinate(4, 8, 8)
    args = (_block_ids, {"raw": str(tmp_path / "in.zarr" / "raw")}, out, block)
    prepare_zarr(out, raw.roi, Coordinate(1, 1, 1), np.uint16, write_size=block)
    here = BlockwiseOptions(num_workers=0, log_dir=tmp_path / "logs", progress=False)
    first = run_blockwise(*args, options=here)
    assert (first.processed, first.skipped) == (8, 0)
    again = run_blockwise(*args, options=here)
    assert (again.processed, again.skipped) == (0, 8)  # resumable: same array, all done
    shutil.rmtree(tmp_path / "out.zarr")
    prepare_zarr(out, raw.roi, Coordinate(1, 1, 1), np.uint16, write_size=block)
    fresh = run_blockwise(*args, options=here)
    assert (fresh.processed, fresh.skipped) == (8, 0)
    data = open_ds(str(out))[raw.roi]
    assert (data > 0).all() and len(np.unique(data)) == 8  # every block written again
