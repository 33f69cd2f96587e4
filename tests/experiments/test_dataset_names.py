"""A dataset's name names files of its validation outputs (``predictions/<it>/<name>.zarr``,
``plots/validation_<it>_<name>.png``): `DataSplitConfig.problems` refuses a name that is no
plain file name or is taken (also ignoring case), naming the field; ``annotated`` is a list
of distinct class names."""

from __future__ import annotations

import pytest

from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig
from dacapo.runs.validation_plot import plot_file_name

RULE = "letters, digits, '_', '-' and '.', not starting with '.'"


def _split(*validate: str, train: str = "train") -> DataSplitConfig:
    return DataSplitConfig([DatasetConfig(train, "r", "g")],
                           [DatasetConfig(n, "r", "g") for n in validate])


@pytest.mark.parametrize("name", ["../../../../victim", "a/b", "", ".hidden", "val ", "a\\b",
                                  "..", "état"])
def test_a_name_that_is_no_plain_file_name_is_refused(name):
    assert _split("val", name).problems() == [
        f"datasplit_config.validate[1].name: {name!r} is not a dataset name ({RULE}; it "
        "names the files of the dataset's validation outputs)"]


def test_a_training_name_is_checked_too():
    assert _split(train="a/b").problems()[0].startswith("datasplit_config.train[0].name: 'a/b'")


@pytest.mark.parametrize("names", [["val", "v.1", "v_1", "v-1", "V2", "2023_crop.A"]])
def test_plain_names_pass_and_their_plots_are_distinct_files(names):
    assert _split(*names).problems() == []
    files = {plot_file_name(n, 7) for n in names}
    assert len(files) == len(names) and "validation_00000007_v.1.png" in files


@pytest.mark.parametrize("validate, train, message", [
    (["val", "val"], "train", "datasplit_config.validate[1].name: 'val' is also the name of "
                              "datasplit_config.validate[0]; dataset names must be unique in "
                              "their list"),
    (["a", "A"], "train", "datasplit_config.validate[1].name: 'A' is also the name of "
                          "datasplit_config.validate[0] ('a': file names that differ only in "
                          "case are one file on macOS and Windows); dataset names must be "
                          "unique in their list"),
])
def test_a_name_taken_in_the_datasplit_is_refused(validate, train, message):
    assert _split(*validate, train=train).problems() == [message]


def test_a_volume_may_train_and_validate_under_one_name():
    assert _split("vol", train="vol").problems() == []


@pytest.mark.parametrize("annotated, message", [
    (["cell", "cell"], "datasplit_config.train[0].annotated: class 'cell' is listed twice"),
    ("cell", "datasplit_config.train[0].annotated: must be a list of class names, got 'cell'"),
])
def test_annotated_is_a_list_of_distinct_classes(annotated, message):
    split = DataSplitConfig([DatasetConfig("t", "r", "g", annotated=annotated)])
    assert split.problems() == [message]
