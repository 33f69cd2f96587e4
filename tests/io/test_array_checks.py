"""`dacapo.io.array_checks` (chunked scans vs numpy, metadata, messages) and `dacapo.io.paths`."""

from __future__ import annotations

import re

import numpy as np
import pytest
from funlib.persistence import open_ds, prepare_ds

from dacapo.errors import InputError
from dacapo.io import array_checks as checks
from dacapo.io.paths import check_not_input, check_output


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


def test_label_and_value_messages():
    # the messages of the chunked data scan (dacapo.runs.verify): exact label values, no 3e+06
    assert re.match(r"^gt: label 3 >= number of classes 3", checks.too_large_message("gt", 3, 3))
    assert re.match(r"^gt: label 3000000 >= number of classes 3",
                    checks.too_large_message("gt", 3_000_000.0, 3))
    assert re.match(r"^gt: negative label -2 .* first at voxel \(1,\)",
                    checks.negative_message("gt", -2, (1,)))
    assert re.match(r"^raw: 1 non-finite value\(s\) \(0 NaN, 1 Inf\)",
                    checks.non_finite_message("raw", 0, 1, (0, 1)))
    with pytest.raises(InputError, match=r"^gt: dtype float64 is not an integer type"):
        checks.check_integer_dtype(np.float64, "gt")
    checks.check_integer_dtype(np.uint64, "gt")


def test_geometry_checks():
    checks.check_voxel_sizes_divide((8, 4, 4), (16, 8, 8), "gt", "raw")
    with pytest.raises(InputError, match="do not divide"):
        checks.check_voxel_sizes_divide((8, 4, 4), (12, 4, 4), "gt", "raw")
    with pytest.raises(InputError, match=r"^gt: voxel size \(4, 4\) has 2 dims"):
        checks.check_voxel_sizes_divide((4, 4), (4, 4, 4), "gt", "raw")
    with pytest.raises(InputError, match=r"^x: empty array \(shape \(3, 0\)\)"):
        checks.check_not_empty((3, 0), "x")
    with pytest.raises(InputError, match="offsets are 2D but the data are 3D"):
        checks.check_neighborhood_dims([(1, 0), (0, 1)], 3, "task")
    checks.check_channels((3, 4, 5, 6), 3, 3, "gt")
    checks.check_channels((4, 5, 6), 3, 3, "gt")
    with pytest.raises(InputError, match=r"^gt: 2 channels"):
        checks.check_channels((2, 4, 5, 6), 3, 3, "gt")


def test_output_path_checks(tmp_path):
    raw = tmp_path / "d.zarr" / "raw"
    raw.mkdir(parents=True)
    with pytest.raises(InputError, match="overlaps"):
        check_not_input(raw, {"raw": raw})
    with pytest.raises(InputError, match="overlaps"):
        check_not_input(raw / "sub", {"raw": raw})
    with pytest.raises(InputError, match="overlaps"):  # an output holding the raw
        check_output(tmp_path / "d.zarr", {"raw": raw})
    check_not_input(tmp_path / "d.zarr" / "seg", {"raw": raw})  # same container
    before = sorted(p.name for p in tmp_path.iterdir())
    check_output(tmp_path / "new.zarr" / "seg", {"raw": raw}, needed_bytes=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # the probe left nothing
    with pytest.raises(InputError, match="not enough space"):
        check_output(tmp_path / "new.zarr" / "seg", needed_bytes=10**20)
