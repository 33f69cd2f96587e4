"""`dacapo.experiments.datasplits`: opening a dataset checks its arrays (named in the
errors), the mask rule, duplicate names, paths relative to a base."""

from __future__ import annotations

import numpy as np
import pytest

from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig


def test_dataset_checks_name_dataset_and_array(tmp_path, write_array):
    c = tmp_path / "d.zarr"
    write_array(c / "raw", np.zeros((8, 8, 8), np.uint8), (16, 8, 8))
    write_array(c / "gt", np.zeros((8, 8, 8), np.uint8), (16, 8, 8))
    write_array(c / "gt2d", np.zeros((8, 8), np.uint8), (8, 8))
    write_array(c / "far", np.zeros((8, 8, 8), np.uint8), (16, 8, 8), offset=(1600, 0, 0))
    write_array(c / "mask4", np.ones((8, 8, 8), np.uint8), (4, 8, 8))
    ok = DatasetConfig("a", str(c / "raw"), str(c / "gt")).open()
    assert ok.training_roi == ok.raw.roi
    cases = [
        (DatasetConfig("b", str(c / "raw"), str(c / "gt2d")), "dataset 'b'.*spatial dim"),
        (DatasetConfig("c", str(c / "raw"), str(c / "far")), "dataset 'c'.*do not overlap"),
        (DatasetConfig("d", str(c / "raw"), str(c / "gt"), str(c / "mask4")),
         "dataset 'd'.*mask"),
        (DatasetConfig("e", str(c / "nope"), str(c / "gt")), "dataset 'e': raw: no array"),
    ]
    for config, pattern in cases:
        with pytest.raises((ValueError, FileNotFoundError), match=pattern):
            config.open()
    split = DataSplitConfig(train=[cases[0][0], cases[0][0]], validate=[])
    problems = split.problems()
    assert any("duplicate dataset names ['b']" in p for p in problems)
    assert DataSplitConfig(train=[]).problems()[0].startswith("datasplit.train")


def test_relative_paths_resolve_against_a_base():
    split = DataSplitConfig(train=[DatasetConfig("t", "a.zarr/raw", "/abs.zarr/gt", "m.zarr/x")])
    r = split.resolve("/data")
    assert (r.train[0].raw, r.train[0].gt, r.train[0].mask) == (
        "/data/a.zarr/raw", "/abs.zarr/gt", "/data/m.zarr/x")


def test_the_mask_rule_same_voxel_size_and_roi_as_the_gt(tmp_path, write_array):
    """One rule (`dacapo.io.array_checks.check_mask`), applied when a dataset opens: a mask
    that only overlaps the GT is refused (before: accepted here, refused by verify, and
    intersected by training)."""
    c = tmp_path / "d.zarr"
    write_array(c / "raw", np.zeros((8, 8, 8), np.uint8), (16, 8, 8))
    write_array(c / "gt", np.zeros((8, 8, 8), np.uint8), (16, 8, 8))
    write_array(c / "same", np.ones((8, 8, 8), np.uint8), (16, 8, 8))
    write_array(c / "part", np.ones((4, 8, 8), np.uint8), (16, 8, 8), offset=(32, 0, 0))
    ds = DatasetConfig("ok", str(c / "raw"), str(c / "gt"), str(c / "same")).open()
    assert ds.training_roi == ds.gt.roi
    with pytest.raises(ValueError, match=r"dataset 'p': mask: shape \(4, 8, 8\) at offset "
                                         r"\(32, 0, 0\) differs from gt shape \(8, 8, 8\)"):
        DatasetConfig("p", str(c / "raw"), str(c / "gt"), str(c / "part")).open()
