"""``plan``, ``verify`` and ``train`` run one data check (`dacapo.runs.verify.split_problems`):
the same bad data are refused by all three, with the same one-line message naming the
dataset, the array and the problem, exit code 2 and no traceback; nothing is written."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import attr
import numpy as np
import pytest
from click.testing import CliRunner
from funlib.persistence import open_ds

from dacapo.cli.main import cli
from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig
from dacapo.experiments.tasks import OneHotTaskConfig
from dacapo.io.config_yaml import to_yaml

VS = (16, 8, 8)
CLASSES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def container(tmp_path_factory, tiny_data) -> Path:
    return tiny_data(tmp_path_factory.mktemp("data"))


def _read(container: Path, name: str) -> np.ndarray:
    return np.asarray(open_ds(f"{container}/train/{name}", mode="r")[:])


@dataclass
class Case:
    id: str
    arrays: dict  # name -> (data(container) -> array, voxel size); "raw"/"gt" default to the good ones
    match: str  # the message (regex)
    one_hot: bool = False  # a one-hot task (classes a, b, c) instead of a distance task
    heldout: bool = False  # the bad arrays are a validation dataset 'heldout'


CASES = [
    Case("negative_labels", {"gt": (lambda c: _read(c, "fg").astype(np.int16) - 1, VS)},
         r"dataset 'train': gt: negative label -1 \(labels must be >= 0"),
    Case("gt_voxel_size_does_not_divide", {"gt": (lambda c: _read(c, "fg"), (12, 8, 8))},
         r"dataset 'train': gt: voxel size \(12, 8, 8\) and raw voxel size \(16, 8, 8\) do not "
         r"divide"),
    Case("all_zero_gt", {"gt": (lambda c: np.zeros_like(_read(c, "fg")), VS)},
         r"dataset 'train': gt: every voxel is 0: no objects to learn"),
    Case("all_zero_one_hot_gt", {"gt": (lambda c: np.zeros_like(_read(c, "classes")), VS)},
         r"dataset 'train': gt: every voxel is class 0", one_hot=True),
    Case("raw_2d_gt_3d", {"raw": (lambda c: _read(c, "raw")[8], VS[1:])},
         r"dataset 'train': raw has 2 spatial dims, gt has 3"),
    Case("raw_3d_gt_2d", {"gt": (lambda c: _read(c, "fg")[8], VS[1:])},
         r"dataset 'train': raw has 3 spatial dims, gt has 2"),
    Case("heldout_negative_labels", {"gt": (lambda c: _read(c, "fg").astype(np.int16) - 1, VS)},
         r"dataset 'heldout': gt: negative label -1", heldout=True),
]


def _prepare(case: Case, container: Path, d: Path, tiny_run,
             write_array) -> tuple[list[str], Path, Path, Path]:
    """(plan arguments, plan output, run config YAML, runs root) for ``case``'s data."""
    good = {"raw": f"{container}/train/raw",
            "gt": f"{container}/train/{'classes' if case.one_hot else 'fg'}"}
    paths = dict(good)
    for name, (make, voxel_size) in case.arrays.items():
        paths[name] = str(d / "bad.zarr" / name)
        write_array(paths[name], make(container), voxel_size)
    train, heldout = (good, paths) if case.heldout else (paths, None)
    task = ["--task", "one_hot", "--classes", ",".join(CLASSES)] if case.one_hot \
        else ["--task", "distance", "--channel", "cell"]
    output = d / "plan.yaml"
    plan = [train["gt"], "--raw", train["raw"], *task, "--minutes", "0.2", "-o", str(output)]
    if heldout:
        plan += ["--validate", f"heldout={heldout['raw']},{heldout['gt']}"]
    split = DataSplitConfig([DatasetConfig("train", train["raw"], train["gt"])],
                            [DatasetConfig("heldout", heldout["raw"], heldout["gt"])]
                            if heldout else [])
    rc = tiny_run(container, num_iterations=2, datasplit_config=split)
    if case.one_hot:
        rc = attr.evolve(rc, task_config=OneHotTaskConfig("one_hot", classes=CLASSES))
    config = d / "run.yaml"
    to_yaml(rc, config)
    return plan, output, config, d / "runs"


def _one_error_line(args: list[str]) -> str:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, (args[0], result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0].removeprefix("error: ")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_plan_verify_and_train_refuse_alike(case, container, tmp_path, tiny_run, write_array):
    plan, output, config, root = _prepare(case, container, tmp_path, tiny_run, write_array)
    planned = _one_error_line(["plan", *plan])
    assert re.search(case.match, planned), planned
    assert not output.exists()

    result = CliRunner().invoke(cli, ["verify", str(config)])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.stderr.splitlines() == [f"{config}: invalid", f"  - {planned}"]

    assert _one_error_line(["train", str(config), "--root", str(root), "--quiet"]) == planned
    assert not root.exists()


def test_a_real_process_prints_the_line(container, tmp_path, tiny_run, write_array, dacapo_cli):
    """``plan`` with a 2D raw and a 3D GT ended in a bare AssertionError."""
    plan, output, _, _ = _prepare(CASES[4], container, tmp_path, tiny_run, write_array)
    proc = dacapo_cli("plan", *plan)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip() == "error: dataset 'train': raw has 2 spatial dims, gt has 3"
    assert not output.exists()


def test_background_only_data_next_to_objects_are_fine(container, tmp_path, tiny_run,
                                                       write_array):
    """The all-zero rule is about the training GT as a whole: a volume of background alone
    beside one with objects, or an all-zero validation GT, is accepted."""
    from dacapo.runs.verify import run_problems

    zero = str(tmp_path / "z.zarr" / "gt")
    write_array(zero, np.zeros_like(_read(container, "fg")), VS)
    raw, fg = f"{container}/train/raw", f"{container}/train/fg"
    split = DataSplitConfig([DatasetConfig("objects", raw, fg), DatasetConfig("empty", raw, zero)],
                            [DatasetConfig("heldout", raw, zero)])
    assert run_problems(tiny_run(container, datasplit_config=split)) == []
    split = DataSplitConfig([DatasetConfig("e1", raw, zero), DatasetConfig("e2", raw, zero)], [])
    problems = run_problems(tiny_run(container, datasplit_config=split))
    assert problems == ["datasets 'e1', 'e2': gt: every voxel is 0: no objects to learn "
                        "(0 is background)"]
