"""Partially annotated training crops end to end: both ways of saying it (a class-id gt
with ``annotated``; CellMap's group of one array per class, one missing) pass ``dacapo
verify`` and train, the unannotated class getting no loss weight in the batches; and the
bad inputs (a class the task does not have, a class array on another grid, no class
annotated) are refused by ``verify`` and ``train`` with one line naming crop and class."""

from __future__ import annotations

import math
from pathlib import Path

import attr
import numpy as np
import pytest
from click.testing import CliRunner
from funlib.persistence import open_ds

from dacapo.cli.main import cli
from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig
from dacapo.experiments.tasks import DistanceTaskConfig, OneHotTaskConfig
from dacapo.io.config_yaml import to_yaml
from dacapo.training.batches import BatchProvider
from dacapo.training.loop import train_run

VS = (16, 8, 8)
CLASSES = ["background", "cell", "membrane"]


@pytest.fixture(scope="module")
def container(tmp_path_factory, tiny_data) -> Path:
    return tiny_data(tmp_path_factory.mktemp("data"))


def _read(container: Path, name: str) -> np.ndarray:
    return np.asarray(open_ds(f"{container}/train/{name}", mode="r")[:])


def _run(container: Path, tiny_run, kind: str, train: DatasetConfig):
    gt = "classes" if kind == "one_hot" else "fg"
    split = DataSplitConfig([train], [DatasetConfig("validate", f"{container}/validate/raw",
                                                    f"{container}/validate/{gt}")])
    task = (OneHotTaskConfig("one_hot", classes=CLASSES) if kind == "one_hot" else
            DistanceTaskConfig("distance", channels=["cell", "membrane"], clip_distance=40,
                               tol_distance=16, scale_factor=20))
    return tiny_run(container, num_iterations=2, datasplit_config=split, task_config=task)


def _class_group(container: Path, d: Path, write_array, membrane_vs=None) -> str:
    """``gt.zarr`` with ``cell`` (the fg), and ``membrane`` only at ``membrane_vs``."""
    write_array(d / "gt.zarr" / "cell", _read(container, "fg"), VS)
    if membrane_vs is not None:
        write_array(d / "gt.zarr" / "membrane", _read(container, "fg"), membrane_vs)
    return str(d / "gt.zarr")


def _verify(rc, d: Path) -> tuple[int, list[str]]:
    config = d / "run.yaml"
    to_yaml(rc, config)
    result = CliRunner().invoke(cli, ["verify", str(config)])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.stderr.splitlines()


@pytest.mark.parametrize("layout", ["annotated_class_ids", "unknown_label", "class_array_group"])
def test_both_layouts_verify_and_train(layout, container, tmp_path, tiny_run, write_array):
    raw = f"{container}/train/raw"
    if layout == "annotated_class_ids":
        rc = _run(container, tiny_run, "one_hot", DatasetConfig(
            "train", raw, f"{container}/train/classes", annotated=["cell"]))
    elif layout == "unknown_label":  # 255 is no class id: verify reads it as unknown
        classes = _read(container, "classes")
        classes[:, :, :8] = 255
        write_array(tmp_path / "gt.zarr" / "classes", classes, VS)
        rc = _run(container, tiny_run, "one_hot", DatasetConfig(
            "train", raw, str(tmp_path / "gt.zarr" / "classes"), annotated=["cell"],
            unknown_label=255))
    else:
        rc = _run(container, tiny_run, "distance", DatasetConfig(
            "train", raw, _class_group(container, tmp_path, write_array)))
    code, lines = _verify(rc, tmp_path)
    assert code == 0, lines
    state = BatchProvider(rc)._setup()
    sample, _ = BatchProvider(rc)._sample(state, np.random.default_rng(0), None)
    target, weight = sample["target"], sample["weight"]
    if layout != "class_array_group":  # unknown voxels: background or membrane
        unknown = target.sum(axis=0) == 2
        assert unknown.any() and np.all(target[[0, 2]][:, unknown] == 1)
        assert np.all(target[1][unknown] == 0)
    else:  # membrane's array is missing: no weight on its channel
        assert np.all(weight[1] == 0) and weight[0].max() > 0
    run_dir = train_run(rc, tmp_path / "runs", progress=False, validate=False)
    losses = [row["loss"] for row in run_dir.training_stats()]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)


def _one_error_line(args: list[str]) -> str:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0].removeprefix("error: ")


@pytest.mark.parametrize("case, message", [
    ("class_not_in_the_task", "dataset 'train': annotated: class 'golgi' is not a class of the "
                              "task ['background', 'cell', 'membrane']"),
    ("class_array_on_another_grid", "dataset 'train': gt/membrane: voxel size (8, 8, 8) differs "
                                    "from gt/cell's (16, 8, 8) (the class arrays of a crop share "
                                    "one grid)"),
    ("no_class_annotated", "dataset 'train': annotated: no class is annotated (nothing to "
                           "learn)"),
])
def test_bad_partial_annotations_are_refused_in_one_line(case, message, container, tmp_path,
                                                         tiny_run, write_array):
    raw = f"{container}/train/raw"
    if case == "class_array_on_another_grid":
        gt = _class_group(container, tmp_path, write_array, membrane_vs=(8, 8, 8))
        rc = _run(container, tiny_run, "distance", DatasetConfig("train", raw, gt))
    else:
        annotated = ["cell", "golgi"] if case == "class_not_in_the_task" else []
        rc = _run(container, tiny_run, "one_hot", DatasetConfig(
            "train", raw, f"{container}/train/classes", annotated=annotated))
    code, lines = _verify(rc, tmp_path)
    assert code == 2 and lines == [f"{tmp_path / 'run.yaml'}: invalid", f"  - {message}"]
    root = tmp_path / "runs"
    assert _one_error_line(["train", str(tmp_path / "run.yaml"), "--root", str(root),
                            "--quiet"]) == message
    assert not root.exists()


def test_a_partial_validation_dataset_is_refused(container, tmp_path, tiny_run, write_array):
    rc = _run(container, tiny_run, "distance", DatasetConfig(
        "train", f"{container}/train/raw", f"{container}/train/fg"))
    gt = _class_group(container, tmp_path, write_array)
    split = attr.evolve(rc.datasplit_config, validate=[
        DatasetConfig("validate", f"{container}/validate/raw", gt)])
    code, lines = _verify(attr.evolve(rc, datasplit_config=split), tmp_path)
    assert code == 2 and lines[1:] == [
        "  - datasplit.validate: dataset 'validate': partial annotations (annotated, "
        "unknown_label, a class-array gt) are for training datasets; validation scores every "
        "class"]
