"""``dacapo verify`` catches, in one problem line naming the field or the dataset (exit
code 2), what ``dacapo train`` would refuse only after writing the run directory (or not
at all): a dataset name that is no file name, normalisation values or data that cannot be
scaled, partial annotations a task or a gt cannot hold; and a nested config given as a
string is one ``error:`` line. Each in a fresh ``dacapo`` process."""

from __future__ import annotations

from pathlib import Path

import attr
import numpy as np
import pytest
import yaml

from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig
from dacapo.experiments.normalization import NormalizationConfig
from dacapo.experiments.tasks import AffinitiesTaskConfig, OneHotTaskConfig
from dacapo.io.config_yaml import to_dict, to_yaml
from dacapo.runs.verify import run_problems

VS = (16, 8, 8)
SHAPE = (16, 48, 48)
CLASSES = ["background", "cell", "membrane"]
CONSTANT = NormalizationConfig(statistics="training")
EACH = NormalizationConfig(statistics="each_array")
PARTIAL = ("partial annotations (annotated, unknown_label or one gt array per class) need a "
           "task with one channel per class (one-hot, distance, hot distance), not "
           "AffinitiesPredictor")


@pytest.fixture(scope="module")
def container(tmp_path_factory, tiny_data, write_array) -> Path:
    c = tiny_data(tmp_path_factory.mktemp("data"))
    write_array(c / "constant" / "raw", np.full(SHAPE, 7, np.uint8), VS)
    return c


def _split(c: Path, train: dict | None = None, validate: dict | None = None,
           extra: list[DatasetConfig] = ()) -> DataSplitConfig:
    t = DatasetConfig("train", f"{c}/train/raw", f"{c}/train/fg")
    v = DatasetConfig("validate", f"{c}/validate/raw", f"{c}/validate/fg")
    return DataSplitConfig([attr.evolve(t, **(train or {}))],
                           [attr.evolve(v, **(validate or {})), *extra])


def _case(case: str, c: Path, tiny_run):
    """(run config, the problem line)."""
    name = "../../../victim"
    if case == "traversal":
        extra = [DatasetConfig(name, f"{c}/validate/raw", f"{c}/validate/fg")]
        return tiny_run(c, datasplit_config=_split(c, extra=extra)), (
            f"datasplit_config.validate[1].name: {name!r} is not a dataset name (letters, "
            "digits, '_', '-' and '.', not starting with '.'; it names the files of the "
            "dataset's validation outputs)")
    if case == "plot_clash_ignoring_case":
        extra = [DatasetConfig("Validate", f"{c}/validate/raw", f"{c}/validate/fg")]
        return tiny_run(c, datasplit_config=_split(c, extra=extra)), (
            "datasplit_config.validate[1].name: 'Validate' is also the name of "
            "datasplit_config.validate[0] ('validate': file names that differ only in case "
            "are one file on macOS and Windows); dataset names must be unique in their list")
    if case == "low_equals_high":
        norm = NormalizationConfig(low=10.0, high=10.0, mean=5.0, std=2.0)
        return tiny_run(c, normalization=norm), (
            "normalization.high: must be greater than normalization.low: the given low 10.0 "
            "and high 10.0 are not increasing (percentile maps low to 0 and high to 1)")
    if case == "std_zero":
        norm = NormalizationConfig(method="meanstd", low=0.0, high=9.0, mean=5.0, std=0.0)
        return tiny_run(c, normalization=norm), (
            "normalization.std: must be greater than 0 (the meanstd method divides by it), "
            "got 0.0")
    if case == "constant_training_raw":
        split = _split(c, train={"raw": f"{c}/constant/raw"})
        return tiny_run(c, normalization=CONSTANT, datasplit_config=split), (
            "normalization: the training raw (dataset 'train') is constant between its 0.5 "
            "and 99.5 percentiles (7); method 'percentile' cannot scale it")
    if case == "constant_validation_raw_each_array":
        split = _split(c, validate={"raw": f"{c}/constant/raw"})
        return tiny_run(c, normalization=EACH, datasplit_config=split), (
            "dataset 'validate': raw: constant between its 0.5 and 99.5 percentiles (7); "
            "normalization 'each_array' cannot scale it")
    if case == "unknown_label_outside_dtype":
        split = _split(c, {"gt": f"{c}/train/classes", "annotated": ["cell"],
                           "unknown_label": -1}, {"gt": f"{c}/validate/classes"})
        task = OneHotTaskConfig("one_hot", classes=CLASSES)
        return tiny_run(c, task_config=task, datasplit_config=split), (
            "dataset 'train': unknown_label: -1 is outside the gt's dtype uint8 (0..255): no "
            "voxel can hold it")
    if case in ("affinities_annotated", "affinities_class_group"):
        train = ({"gt": f"{c}/train/labels", "annotated": ["cell"]}
                 if case == "affinities_annotated" else {"gt": f"{c}/train"})
        split = _split(c, train, {"gt": f"{c}/validate/labels"})
        task = AffinitiesTaskConfig("aff", neighborhood=[(1, 0, 0), (0, 1, 0), (0, 0, 1)])
        return tiny_run(c, task_config=task, datasplit_config=split), f"dataset 'train': {PARTIAL}"
    raise AssertionError(case)


@pytest.mark.parametrize("case", [
    "traversal", "plot_clash_ignoring_case", "low_equals_high", "std_zero",
    "constant_training_raw", "constant_validation_raw_each_array",
    "unknown_label_outside_dtype", "affinities_annotated", "affinities_class_group",
])
def test_verify_names_the_field_or_dataset_in_one_line(case, container, tiny_run):
    # verify's problem list (in this process); the CLI prints each as one line, exit 2
    # (a real process: the tests below and tests/system/test_bad_inputs.py)
    rc, message = _case(case, container, tiny_run)
    assert run_problems(rc) == [message]


def test_verify_in_a_real_process(container, tmp_path, tiny_run, dacapo_cli):
    rc, message = _case("traversal", container, tiny_run)
    config = tmp_path / "run.yaml"
    to_yaml(rc, config)
    result = dacapo_cli("verify", str(config))
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [f"{config}: invalid", f"  - {message}"]


def test_train_refuses_constant_each_array_raw_before_writing(container, tmp_path, tiny_run,
                                                               dacapo_cli):
    split = _split(container, validate={"raw": f"{container}/constant/raw"})
    config = tmp_path / "run.yaml"
    to_yaml(tiny_run(container, normalization=EACH, datasplit_config=split), config)
    result = dacapo_cli("train", str(config), "--root", str(tmp_path / "runs"), "--quiet")
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "error: dataset 'validate': raw: constant between its 0.5 and 99.5 percentiles (7); "
        "normalization 'each_array' cannot scale it"]
    assert not (tmp_path / "runs").exists()


def test_a_nested_config_given_as_a_string_is_one_error_line(container, tmp_path, tiny_run,
                                                             dacapo_cli):
    data = to_dict(tiny_run(container))
    data["normalization"] = "percentile"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(data))
    result = dacapo_cli("verify", str(config))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: expected a mapping (NormalizationConfig: fields method, lower_percentile, "
        "upper_percentile, low, high, statistics, mean, std), got the string 'percentile' @ "
        "RunConfig.normalization"]


def test_an_unknown_label_the_gt_never_holds_is_a_warning(container, tmp_path, tiny_run,
                                                          dacapo_cli):
    split = _split(container, {"gt": f"{container}/train/classes", "annotated": ["cell"],
                               "unknown_label": 200}, {"gt": f"{container}/validate/classes"})
    rc = tiny_run(container, task_config=OneHotTaskConfig("one_hot", classes=CLASSES),
                  datasplit_config=split)
    config = tmp_path / "run.yaml"
    to_yaml(rc, config)
    result = dacapo_cli("verify", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{config}: valid\n"
    assert result.stderr.splitlines() == [
        "WARNING dacapo.runs.dataset_checks: dataset 'train': unknown_label: no gt voxel has "
        "the value 200 (every voxel labelled: fine for a complete crop; otherwise check the "
        "value)"]
