"""`dacapo.checks` on their own (chunked scans vs numpy, paths) and a runner regression."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi
from funlib.persistence import open_ds, prepare_ds

from dacapo import checks
from dacapo.blockwise import BlockInfo, prepare_output, run_blockwise


def _zarr(path, data, chunks):
    arr = prepare_ds(str(path), data.shape, offset=(0,) * data.ndim, voxel_size=(1,) * data.ndim,
                     dtype=data.dtype, chunk_shape=chunks, mode="w")
    arr[arr.roi] = data
    return open_ds(str(path))


@pytest.mark.parametrize("budget", [64, 4096, 2**26])
def test_scan_matches_numpy_for_any_budget(tmp_path, budget):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(13, 17, 19)).astype(np.float32) * 10
    data[4, 5, 6] = np.nan
    data[12, 0, 18] = -np.inf
    data[2, 2, 2] = 2.5  # non-integral (all are, but counted)
    arr = _zarr(tmp_path / "a.zarr" / "x", data, (4, 5, 6))
    s = checks.scan_array(arr, budget_bytes=budget)
    finite = data[np.isfinite(data)]
    assert s.size == data.size
    assert (s.nan, s.inf) == (1, 1)
    assert s.first_non_finite == (4, 5, 6)
    assert s.min == pytest.approx(finite.min()) and s.max == pytest.approx(finite.max())
    assert s.nonzero == np.count_nonzero(data)
    assert s.non_integral == np.count_nonzero(finite != np.round(finite))
    neg = np.argwhere(np.nan_to_num(data, nan=0, neginf=0) < 0)
    assert s.first_negative is not None and list(s.first_negative) in neg.tolist()


def test_blocks_cover_every_voxel_once_within_budget():
    shape, chunks, itemsize, budget = (37, 50, 23), (8, 16, 5), 4, 20_000
    count = np.zeros(shape, np.int32)
    for sl in checks._blocks(shape, chunks, itemsize, budget):
        box = count[sl]
        assert box.size * itemsize <= max(budget, np.prod(chunks) * itemsize)
        box += 1
    assert (count == 1).all()


def test_label_and_value_checks():
    checks.check_label_range(np.array([0, 1, 2]), 3, "gt")
    with pytest.raises(checks.InputError, match=r"^gt: label 3 >= number of classes 3"):
        checks.check_label_range(np.array([0, 3]), 3, "gt")
    with pytest.raises(checks.InputError, match=r"^gt: label 3000000 >= number of classes 3"):
        checks.check_label_range(np.array([0, 3_000_000]), 3, "gt")  # exact, not 3e+06
    with pytest.raises(checks.InputError, match=r"^gt: negative label -2 .* first at voxel \(1,\)"):
        checks.check_non_negative(np.array([0, -2, 1]), "gt")
    with pytest.raises(checks.InputError, match=r"^raw: 1 non-finite value\(s\) \(0 NaN, 1 Inf\)"):
        checks.check_finite(np.array([[0.0, np.inf]]), "raw")
    checks.check_finite(np.array([1, 2], np.uint8), "raw")  # integers are always finite
    with pytest.raises(checks.InputError, match=r"^gt: dtype float64 is not an integer type"):
        checks.check_integer_dtype(np.float64, "gt")
    checks.check_integer_dtype(np.uint64, "gt")


def test_geometry_checks():
    checks.check_voxel_sizes_divide((8, 4, 4), (16, 8, 8), "gt", "raw")
    with pytest.raises(checks.InputError, match="do not divide"):
        checks.check_voxel_sizes_divide((8, 4, 4), (12, 4, 4), "gt", "raw")
    with pytest.raises(checks.InputError, match=r"^gt: voxel size \(4, 4\) has 2 dims"):
        checks.check_voxel_sizes_divide((4, 4), (4, 4, 4), "gt", "raw")
    with pytest.raises(checks.InputError, match=r"^x: empty array \(shape \(3, 0\)\)"):
        checks.check_not_empty((3, 0), "x")
    with pytest.raises(checks.InputError, match="does not overlap"):
        checks.check_overlap(Roi((0, 0), (4, 4)), Roi((4, 0), (4, 4)), "raw", "gt")
    assert checks.check_overlap(Roi((0, 0), (4, 4)), Roi((2, 0), (4, 4)), "a", "b") == Roi(
        (2, 0), (2, 4))
    with pytest.raises(checks.InputError, match="offsets are 2D but the data are 3D"):
        checks.check_neighborhood_dims([(1, 0), (0, 1)], 3, "task")
    checks.check_channels((3, 4, 5, 6), 3, 3, "gt")
    checks.check_channels((4, 5, 6), 3, 3, "gt")
    with pytest.raises(checks.InputError, match=r"^gt: 2 channels"):
        checks.check_channels((2, 4, 5, 6), 3, 3, "gt")


def test_output_path_checks(tmp_path):
    raw = tmp_path / "d.zarr" / "raw"
    raw.mkdir(parents=True)
    with pytest.raises(checks.InputError, match="overlaps"):
        checks.check_output_not_input(raw, {"raw": raw})
    with pytest.raises(checks.InputError, match="overlaps"):
        checks.check_output_not_input(raw / "sub", {"raw": raw})
    checks.check_output_not_input(tmp_path / "d.zarr" / "seg", {"raw": raw})  # same container
    before = sorted(p.name for p in tmp_path.iterdir())
    checks.check_output_location(tmp_path / "new.zarr" / "seg", needed_bytes=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # the probe left nothing
    with pytest.raises(checks.InputError, match="not enough space"):
        checks.check_output_location(tmp_path / "new.zarr" / "seg", needed_bytes=10**20)


def test_unwrap_worker_message():
    text = ("Caught ValueError in DataLoader worker process 0.\nOriginal Traceback (most recent "
            "call last):\n  File \"x.py\", line 1\nValueError: dataset 'a': raw: bad\n")
    assert checks.unwrap_worker_message(text) == "dataset 'a': raw: bad"
    assert checks.unwrap_worker_message("plain") == "plain"


def _ones(raw: np.ndarray, block: BlockInfo) -> np.ndarray:
    return np.full(tuple(block.write_roi.shape / block.voxel_size), block.block_id + 1, np.uint16)


def test_two_workers_when_the_roi_is_smaller_than_a_block_on_one_axis(tmp_path):
    # prepare_output clips chunks to the ROI: (10, 30, 8) with blocks (10, 10, 16) voxels;
    # axis 2 has one block only, so no two blocks share a chunk
    raw = _zarr(tmp_path / "in.zarr" / "raw", np.zeros((10, 30, 8), np.uint8), (10, 30, 8))
    out = tmp_path / "out.zarr" / "o"
    block = Coordinate(10, 10, 16)
    prepare_output(out, raw.roi, Coordinate(1, 1, 1), np.uint16, write_size=block)
    result = run_blockwise(functools.partial(_ones), {"raw": str(tmp_path / "in.zarr" / "raw")},
                           out, block, num_workers=2, log_dir=tmp_path / "logs", progress=False)
    assert (result.total, result.processed) == (3, 3)
    data = open_ds(str(out))[raw.roi]
    assert (data > 0).all() and len(np.unique(data)) == 3
    for y in range(0, 30, 10):  # one block per y-slab, each written whole
        assert len(np.unique(data[:, y : y + 10, :])) == 1
