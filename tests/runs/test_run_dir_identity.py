"""A re-run is the same run when its config is (`dacapo.runs.run_dir.prepare_run_dir`):
paths are compared normalised, and a refusal names the differing field and both values."""

from __future__ import annotations

import attr
import pytest

from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig
from dacapo.runs.run_dir import first_difference, prepare_run_dir


def _split(raw: str, gt: str) -> DataSplitConfig:
    return DataSplitConfig([DatasetConfig("train", raw, gt)], [])


def test_first_difference_names_the_leaf():
    stored = {"seed": 1, "datasplit_config": {"train": [{"raw": "/a/x.zarr", "gt": "g"}]}}
    assert first_difference(stored, stored) is None
    new = {"seed": 1, "datasplit_config": {"train": [{"raw": "/b/x.zarr", "gt": "g"}]}}
    assert first_difference(stored, new) == ("datasplit_config.train[0].raw", "/a/x.zarr",
                                              "/b/x.zarr")
    assert first_difference({"seed": 1}, {"seed": 2}) == ("seed", 1, 2)
    assert first_difference({"a": [1]}, {"a": [1, 2]}) == ("a", [1], [1, 2])
    assert first_difference({"a": 1}, {"a": 1, "b": 2}) == ("b", None, 2)


def test_the_same_data_by_another_path_is_the_same_run(tmp_path, tiny_run):
    data = tmp_path / "a"
    rc = tiny_run(data, datasplit_config=_split(f"{data}/x.zarr/raw", f"{data}/x.zarr/gt"))
    prepare_run_dir(rc, tmp_path / "runs")
    same = f"{tmp_path}/a/b/../x.zarr"  # was refused: 'a different datasplit_config'
    again = attr.evolve(rc, datasplit_config=_split(f"{same}/raw", f"{same}/gt"))
    assert prepare_run_dir(again, tmp_path / "runs").exists()


def test_a_refusal_names_the_field_and_both_values(tmp_path, tiny_run):
    rc = tiny_run(tmp_path, datasplit_config=_split("/a/x.zarr/raw", "/a/x.zarr/gt"))
    prepare_run_dir(rc, tmp_path / "runs")
    other = attr.evolve(rc, datasplit_config=_split("/a/y.zarr/raw", "/a/x.zarr/gt"))
    with pytest.raises(ValueError) as info:
        prepare_run_dir(other, tmp_path / "runs")
    assert ("holds a run with a different datasplit_config.train[0].raw: '/a/x.zarr/raw' "
            "there, '/a/y.zarr/raw' in this config; choose another run name or root") \
        in str(info.value)
    with pytest.raises(ValueError, match=r"a different seed: 3 there, 9 in this config"):
        prepare_run_dir(attr.evolve(rc, seed=9), tmp_path / "runs")
    # what a re-run may change is not compared
    prepare_run_dir(attr.evolve(rc, num_iterations=99), tmp_path / "runs")
