"""`dacapo.pipeline.input_match`: an input unlike the training raw is named, one line each;
the spreads against `np.percentile` / `np.std` of the arrays themselves."""

from __future__ import annotations

import attr
import numpy as np
import pytest

from dacapo.experiments.normalization import NormalizationConfig, with_statistics
from dacapo.io.arrays import open_array, read_array
from dacapo.pipeline.input_match import input_warnings, intensity_spread


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_data, tiny_run, write_array):
    root = tmp_path_factory.mktemp("input_match")
    container = tiny_data(root)
    rc = with_statistics(tiny_run(container, normalization=NormalizationConfig()))
    train = open_array(f"{container}/train/raw", "raw")
    data = np.asarray(read_array(train, train.roi))
    vs = tuple(train.voxel_size)
    write_array(root / "same.zarr" / "raw", data, vs)
    write_array(root / "u16.zarr" / "raw", data.astype(np.uint16) * 256, vs)
    write_array(root / "float.zarr" / "raw", (data / 255).astype(np.float32), vs)
    write_array(root / "fine.zarr" / "raw", data, tuple(v // 2 for v in vs))
    return rc, root, data, vs


def _open(root, name):
    return open_array(str(root / f"{name}.zarr" / "raw"), "raw")


def test_an_input_like_the_training_raw_gives_no_line(setup):
    rc, root, _, _ = setup
    assert input_warnings(rc, _open(root, "same"), "input") == []
    assert intensity_spread(rc, _open(root, "same")) == pytest.approx(1.0)


def test_another_dtype_or_range_is_named_with_its_spread(setup):
    rc, root, data, _ = setup
    lo, hi = np.percentile(data.astype(np.float64), [0.5, 99.5])
    for name, scale in (("u16", 256.0), ("float", 1 / 255)):
        expected = (hi - lo) * scale / (rc.normalization.high - rc.normalization.low)
        assert intensity_spread(rc, _open(root, name)) == pytest.approx(expected, rel=1e-5)
        (line,) = input_warnings(rc, _open(root, name), f"input {name}")
        assert line.startswith(f"input {name}: its intensity spread is {expected:.3g}x")
    meanstd = attr.evolve(rc, normalization=attr.evolve(rc.normalization, method="meanstd"))
    assert intensity_spread(meanstd, _open(root, "u16")) == pytest.approx(
        np.std(data.astype(np.float64) * 256) / rc.normalization.std, rel=1e-5)
    # each array mapped by its own statistics: its spread is not the training raw's business
    own = attr.evolve(rc, normalization=NormalizationConfig(statistics="each_array"))
    assert intensity_spread(own, _open(root, "u16")) is None
    assert input_warnings(own, _open(root, "u16"), "input") == []


def test_another_voxel_size_is_named(setup):
    rc, root, _, vs = setup
    (line,) = input_warnings(rc, _open(root, "fine"), "input fine")
    assert line.startswith(f"input fine: voxel size {tuple(v // 2 for v in vs)} differs from "
                           f"the training raw's {vs}")
