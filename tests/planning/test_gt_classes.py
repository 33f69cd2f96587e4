"""Planning from class-id GT and from groups of class arrays (CellMap's layout): the
classes, their fractions and per-class object widths against hand-computed values, and
the one-line refusal of instance ids as one-hot classes."""

from __future__ import annotations

import numpy as np
import pytest
from funlib.geometry import Coordinate
from funlib.persistence import prepare_ds

from dacapo.errors import InputError
from dacapo.io.arrays import open_array
from dacapo.planning.gt_classes import group_classes, open_training_gt
from dacapo.planning.planner import plan_run
from dacapo.planning.rules import fingerprint

VS = Coordinate((40, 4, 4))


def _write(path, data):
    arr = prepare_ds(str(path), shape=data.shape, voxel_size=VS, dtype=data.dtype, mode="w")
    arr[arr.roi] = data


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    root = tmp_path_factory.mktemp("classes") / "c.zarr"
    ids = np.zeros((6, 64, 64), np.uint8)
    ids[:, 4:24, 4:24] = 1  # mito: 20 x 20 in-plane box, deepest voxel 10 voxels in -> 80 nm
    ids[:, 40:46, 8:56] = 2  # er: 6 voxels wide -> 24 nm
    _write(root / "raw", np.random.default_rng(0).integers(0, 255, ids.shape).astype(np.uint8))
    _write(root / "ids", ids)
    _write(root / "group" / "mito", (ids == 1).astype(np.uint8))
    _write(root / "group" / "er", (ids == 2).astype(np.uint8))
    _write(root / "instances", np.arange(ids.size, dtype=np.uint32).reshape(ids.shape) % 50)
    return root, ids


def test_group_classes_and_stack(crops):
    root, ids = crops
    assert group_classes([str(root / "group"), str(root / "ids")]) == ["er", "mito"]
    assert group_classes([str(root / "ids")]) is None
    stack = open_training_gt(str(root / "group"), ["mito", "er", "golgi"], "train")
    data = np.asarray(stack[stack.roi])
    assert data.shape == (3, *ids.shape)
    np.testing.assert_array_equal(data[0], ids == 1)
    np.testing.assert_array_equal(data[1], ids == 2)
    assert not data[2].any()  # a class without its array: zeros (not annotated)


def test_fingerprint_of_class_stack_and_of_class_ids(crops):
    root, ids = crops
    raw = open_array(str(root / "raw"), "raw")
    stack = open_training_gt(str(root / "group"), ["mito", "er"], "train")
    fp = fingerprint([stack], [raw], "one_hot")
    total = ids.size
    assert fp.class_fractions == pytest.approx(
        {0: np.sum(ids == 1) / total, 1: np.sum(ids == 2) / total})
    # one-hot on class ids 0..2 (as `plan --classes bg,mito,er` fingerprints it): id i is
    # class i, the background id 0 included
    fp = fingerprint([open_array(str(root / "ids"), "gt")], [raw], "one_hot", num_classes=3)
    assert fp.class_fractions == pytest.approx({i: np.sum(ids == i) / total for i in range(3)})
    # distance on class ids 1..2: the objects of every class; widths 2 x deepest distance
    fp = fingerprint([open_array(str(root / "ids"), "gt")], [raw], "distance", num_classes=2)
    assert fp.num_objects == 2
    # voxel-weighted median of (80 nm, 24 nm) with volumes of 2400 and 1728 voxels
    assert fp.object_width == pytest.approx(2 * 10 * 4)


@pytest.mark.parametrize("gt,classes,expected", [
    ("ids", ["mito", "er"], ["mito", "er"]),
    ("group", None, ["er", "mito"]),
])
def test_distance_plan_has_one_channel_per_class(crops, gt, classes, expected):
    root, _ = crops
    rc, text = plan_run([str(root / gt)], [str(root / "raw")], "distance", minutes=1,
                        classes=classes)
    assert rc.task_config.channels == expected
    assert "channels" in text


def test_one_hot_plan_from_a_group_takes_its_array_names(crops):
    root, _ = crops
    rc, _ = plan_run([str(root / "group")], [str(root / "raw")], "one_hot", minutes=1)
    assert rc.task_config.classes == ["er", "mito"]


def test_instance_ids_are_not_guessed_as_one_hot_classes(crops):
    root, _ = crops
    with pytest.raises(InputError, match="50 distinct values: instance ids"):
        plan_run([str(root / "instances")], [str(root / "raw")], "one_hot", minutes=1)


def test_instance_classes_are_planned_per_class(crops):
    root, _ = crops
    rc, text = plan_run([str(root / "ids")], [str(root / "raw")], "distance", minutes=1,
                        classes=["mito", "er"], instance_classes=["mito"])
    assert rc.task_config.instance_classes == ["mito"]
    assert "instance_classes" in text
    rc.task_config.build()  # a valid config
    with pytest.raises(InputError, match="--instance-classes: only for one_hot and distance"):
        plan_run([str(root / "ids")], [str(root / "raw")], "affinities", minutes=1,
                 instance_classes=["mito"])
