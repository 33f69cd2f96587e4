"""`dacapo.experiments.datasplits`: opening a dataset checks its arrays (named in the
errors), the mask rule, duplicate names, paths relative to a base."""

from __future__ import annotations

import attr
import numpy as np
import pytest
import zarr

from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig
from dacapo.io.ome_write import write_image


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
    assert "datasplit_config.train[1].name: 'b' is also the name of datasplit_config.train[0]; " \
        "dataset names must be unique in their list" in problems
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


def _crop(c, write_array, classes=("mito", "synapse"), vs=(16, 8, 8)):
    """raw, a class-id gt and a class-array group ``gt.zarr`` holding ``classes``."""
    write_array(c / "raw", np.zeros((8, 8, 8), np.uint8), (16, 8, 8))
    write_array(c / "ids", np.arange(512).reshape(8, 8, 8).astype(np.uint8) % 3, (16, 8, 8))
    for name in classes:
        write_array(c / "gt" / name, np.ones((8, 8, 8), np.uint8), vs)


def test_a_class_array_group_is_the_stack_of_the_task_classes(tmp_path, write_array):
    """CellMap's layout: one array (or OME-NGFF image) per class in a zarr group (or a plain
    folder); a missing one is an unannotated class (zeros in the stack); without the task's
    classes, the group's arrays by name."""
    c = tmp_path / "d.zarr"
    _crop(c, write_array, classes=("synapse",))
    zarr.open_group(str(c / "gt"), mode="a")
    write_image(c / "gt" / "mito", np.ones((8, 8, 8), np.uint8), (0, 0, 0), (16, 8, 8),
                label=True)
    config = DatasetConfig("crop", str(c / "raw"), str(c / "gt"))
    ds = config.open(["mito", "er", "synapse"])
    assert ds.partial and ds.annotated == ("mito", "synapse")
    assert list(ds.gt.axis_names) == ["c^", "z", "y", "x"]
    stack = np.asarray(ds.gt[ds.gt.roi])
    assert stack.shape == (3, 8, 8, 8) and stack[[0, 2]].all() and not stack[1].any()
    assert ds.gt.voxel_size == ds.raw.voxel_size
    assert config.open().annotated == ("mito", "synapse")
    with pytest.raises(ValueError, match="dataset 'crop': unknown_label: only for a class-id gt"):
        attr.evolve(config, unknown_label=0).open()
    plain = DatasetConfig("ids", str(c / "raw"), str(c / "ids"), annotated=["mito"]).open(["a", "mito"])
    assert plain.annotated == ("mito",) and plain.class_arrays is None and plain.partial
    assert not DatasetConfig("ids", str(c / "raw"), str(c / "ids")).open(["a"]).partial


@pytest.mark.parametrize("case, match", [
    ("unknown_class", r"^dataset 'crop': annotated: class 'golgi' is not a class of the task "
                      r"\['mito', 'synapse'\]$"),
    ("voxel_size", r"^dataset 'crop': gt/synapse: voxel size \(8, 8, 8\) differs from "
                   r"gt/mito's \(16, 8, 8\)"),
    ("shape", r"^dataset 'crop': gt/synapse: shape \(4, 8, 8\) at offset \(0, 0, 0\) differs "
              r"from gt/mito's shape \(8, 8, 8\)"),
    ("none_annotated", r"^dataset 'crop': annotated: no class is annotated"),
    ("empty_group", r"^dataset 'crop': gt: the group .* holds no array of the classes "
                    r"\['mito', 'synapse'\] \(every class unannotated"),
])
def test_bad_partial_annotations_name_the_crop_and_class(tmp_path, write_array, case, match):
    c = tmp_path / "d.zarr"
    _crop(c, write_array, classes=("mito",))
    gt, annotated = str(c / "gt"), None
    if case == "unknown_class":
        gt, annotated = str(c / "ids"), ["mito", "golgi"]
    elif case == "voxel_size":
        write_array(c / "gt" / "synapse", np.ones((16, 8, 8), np.uint8), (8, 8, 8))
    elif case == "shape":
        write_array(c / "gt" / "synapse", np.ones((4, 8, 8), np.uint8), (16, 8, 8))
    elif case == "none_annotated":
        gt, annotated = str(c / "ids"), []
    else:
        write_array(c / "empty" / "golgi", np.ones((8, 8, 8), np.uint8), (16, 8, 8))
        gt = str(c / "empty")
    with pytest.raises(ValueError, match=match) as e:
        DatasetConfig("crop", str(c / "raw"), gt, annotated=annotated).open(["mito", "synapse"])
    assert "\n" not in str(e.value)


def test_partial_annotations_are_for_training_datasets(tmp_path):
    d = DatasetConfig("v", "r", "g", unknown_label=255)
    assert DataSplitConfig([DatasetConfig("t", "r", "g", annotated=["a"])], [d]).problems() == [
        "datasplit.validate: dataset 'v': partial annotations (annotated, unknown_label, a "
        "class-array gt) are for training datasets; validation scores every class"]
    resolved = DatasetConfig("t", "a.zarr/raw", "a.zarr/gt", annotated=["x"],
                             unknown_label=0).resolve("/data")
    assert (resolved.gt, resolved.annotated, resolved.unknown_label) == ("/data/a.zarr/gt", ["x"], 0)


def test_ignore_sections_must_lie_in_a_3d_gt(tmp_path, write_array):
    """Sections outside the gt, or any section of a 2D gt, are refused naming the dataset."""
    c = tmp_path / "d.zarr"
    write_array(c / "raw3", np.zeros((6, 8, 8), np.uint8), (16, 8, 8))
    write_array(c / "gt3", np.ones((6, 8, 8), np.uint8), (16, 8, 8))
    write_array(c / "raw2", np.zeros((8, 8), np.uint8), (8, 8))
    write_array(c / "gt2", np.ones((8, 8), np.uint8), (8, 8))
    assert DatasetConfig("ok", str(c / "raw3"), str(c / "gt3"),
                         ignore_sections=[0, 5]).open().ignore_sections == (0, 5)
    with pytest.raises(ValueError, match="dataset 'a': ignore_sections: section 6 is outside"):
        DatasetConfig("a", str(c / "raw3"), str(c / "gt3"), ignore_sections=[6]).open()
    with pytest.raises(ValueError, match="dataset 'b': ignore_sections: the gt is 2D"):
        DatasetConfig("b", str(c / "raw2"), str(c / "gt2"), ignore_sections=[0]).open()
