"""The ``dacapo`` command line: help, verify (examples, bad input), convert."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from click.testing import CliRunner
from funlib.persistence import open_ds

from dacapo.cli.demo_configs import ITERATIONS
from dacapo.cli.demo_data import make_demo_data
from dacapo.cli.main import cli, unwrap_worker_message
from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig
from dacapo.experiments.run_config import RunConfig
from dacapo.io.arrays import open_array
from dacapo.io.config_yaml import from_yaml, to_yaml

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))
COMMANDS = ["verify", "train", "validate", "apply", "convert", "plan", "downsample", "view",
            "export", "config-help", "demo"]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def container(tmp_path_factory, tiny_data):
    return tiny_data(tmp_path_factory.mktemp("cli"))


def test_help_of_every_command(dacapo_cli):
    result = dacapo_cli("--help")  # the real entry point, in a fresh process
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout
    for command in COMMANDS:
        r = invoke(command, "--help")
        assert r.exit_code == 0, r.output
        assert f"Usage: cli {command}" in r.output or "Usage:" in r.output


def test_every_example_verifies(tmp_path, monkeypatch, dacapo_cli):
    """One example per task kind; run from a folder holding the demo data (as after
    `make demo`), each passes ``dacapo verify`` with its data checked."""
    kinds = {from_yaml(p, RunConfig).task_config.__class__.__name__ for p in EXAMPLES}
    assert kinds == {"DistanceTaskConfig", "InnerDistanceTaskConfig", "HotDistanceTaskConfig",
                     "OneHotTaskConfig", "AffinitiesTaskConfig", "PretrainedTaskConfig"}
    monkeypatch.chdir(tmp_path)
    make_demo_data(tmp_path / "demo_runs", train_shape=(24, 72, 72), validate_shape=(16, 48, 48))
    for path in EXAMPLES:
        rc = from_yaml(path, RunConfig)
        if type(rc.task_config).__name__ == "PretrainedTaskConfig":
            # the weights the demo leaves: its distance run's last checkpoint
            final = ITERATIONS["demo_distance"]
            assert str(rc.task_config.weights) == (
                f"demo_runs/demo_distance/checkpoints/{final:08d}.pt")
            model = rc.task_config.sub_task_config.build().create_model(rc.architecture_config)
            rc.task_config.weights.parent.mkdir(parents=True)
            torch.save({"model": model.state_dict()}, rc.task_config.weights)
        result = invoke("verify", str(path))
        assert result.exit_code == 0, f"{path.name}: {result.output}"
        assert "valid" in result.output
    # the real command on one of them
    result = dacapo_cli("verify", str(EXAMPLES[0]), cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip().endswith(": valid"), result.stderr


def _config(tiny_run, tmp_path: Path, container: Path, **dataset) -> Path:
    """A run config whose training dataset has the given raw/gt paths."""
    ds = {"name": "train", "raw": f"{container}/train/raw", "gt": f"{container}/train/fg",
          **dataset}
    rc = tiny_run(container, datasplit_config=DataSplitConfig(train=[DatasetConfig(**ds)]))
    path = tmp_path / "run.yaml"
    to_yaml(rc, path)
    return path


def _one_line_error(result, *needles: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_bad_input_gives_one_line_and_exit_2(tmp_path, container, write_array, dacapo_cli,
                                             tiny_run):
    runs = str(tmp_path / "runs")
    # a wrong path (no such container)
    missing = tmp_path / "nowhere.zarr" / "raw"
    config = _config(tiny_run, tmp_path, container, raw=str(missing))
    _one_line_error(dacapo_cli("train", str(config), "--root", runs), "raw", str(missing))
    # a missing array in an existing container
    config = _config(tiny_run, tmp_path, container, gt=f"{container}/train/no_such_array")
    _one_line_error(dacapo_cli("train", str(config), "--root", runs), "gt", "no_such_array")
    # raw and gt with different voxel sizes
    gt = np.asarray(open_ds(f"{container}/train/fg", mode="r")[:])
    write_array(tmp_path / "other.zarr" / "gt", gt, (12, 8, 8))
    config = _config(tiny_run, tmp_path, container, gt=str(tmp_path / "other.zarr" / "gt"))
    line = _one_line_error(dacapo_cli("train", str(config), "--root", runs), "gt", "voxel size")
    assert "(16, 8, 8)" in line and "(12, 8, 8)" in line
    # verify lists the reason and exits 2 as well
    r = invoke("verify", str(config))
    assert r.exit_code == 2 and "voxel size" in r.output and "invalid" in r.output
    assert not Path(runs).exists() or not any(Path(runs).iterdir())  # nothing written


def test_bad_input_in_process(tmp_path, container, tiny_run):
    """More bad input, through click in this process (same error handler)."""
    def error(*args: str) -> str:
        r = invoke(*args)
        assert r.exit_code == 2, r.output
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
        return lines[0]

    assert "not found" in error("train", str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(to_yaml(tiny_run(container)).replace("num_iterations:", "num_iteratons:"))
    assert "num_iteratons" in error("train", str(bad), "--root", str(tmp_path / "r"))
    assert "no run.yaml" in error("apply", str(tmp_path), "--input", "x", "--output", "y")
    assert "--voxel-size" in error("convert", str(bad), str(tmp_path / "o.zarr" / "a"),
                                   "--voxel-size", "4,a")
    # an error raised in a data worker process comes out as its own message
    from dacapo.cli.main import _one_line

    wrapped = ValueError("Caught ValueError in DataLoader worker process 0.\nOriginal "
                         "Traceback (most recent call last):\n  File \"x.py\", line 1\n"
                         "ValueError: dataset 'train': gt: label 7 >= number of classes 3")
    assert _one_line(wrapped) == "dataset 'train': gt: label 7 >= number of classes 3"
    # re-using a run directory for another run
    root = tmp_path / "runs"
    config = tmp_path / "a.yaml"
    to_yaml(tiny_run(container, num_iterations=1), config)
    assert invoke("train", str(config), "--root", str(root), "--quiet").exit_code == 0
    to_yaml(tiny_run(container, num_iterations=1, seed=9), config)
    assert "different seed" in error("train", str(config), "--root", str(root))


@pytest.mark.parametrize("layout", ["stack", "folder", "2d"])
def test_convert_tiff_round_trip(tmp_path, layout):
    rng = np.random.default_rng(0)
    if layout == "2d":
        data = rng.integers(0, 65535, size=(37, 45), dtype=np.uint16)
        voxel_size = "6,4"
    else:
        data = rng.integers(0, 255, size=(7, 33, 40), dtype=np.uint8)
        voxel_size = "40,8,8"
    if layout == "folder":
        source = tmp_path / "slices"
        source.mkdir()
        for z, plane in enumerate(data):
            tifffile.imwrite(source / f"slice_{z:03d}.tif", plane)
    else:
        source = tmp_path / "stack.tif"
        tifffile.imwrite(source, data)
    out = tmp_path / "converted.zarr" / "raw"
    r = invoke("convert", str(source), str(out), "--voxel-size", voxel_size, "--chunk", "4")
    assert r.exit_code == 0, r.output
    array = open_array(out)
    expected_vs = tuple(int(v) for v in voxel_size.split(","))
    assert tuple(array.voxel_size) == expected_vs
    assert tuple(array.roi.offset) == (0,) * data.ndim
    assert array.dtype == data.dtype
    np.testing.assert_array_equal(array[array.roi], data)
    # the output is never overwritten; a wrong number of voxel-size values is refused
    r = invoke("convert", str(source), str(out), "--voxel-size", voxel_size)
    assert r.exit_code == 2 and "exists" in r.stderr
    wrong = "4,4" if data.ndim == 3 else "4,4,4"
    r = invoke("convert", str(source), str(tmp_path / "w.zarr" / "raw"), "--voxel-size", wrong)
    assert r.exit_code == 2 and "voxel-size" in r.stderr


def test_unwrap_worker_message():
    text = ("Caught ValueError in DataLoader worker process 0.\nOriginal Traceback (most recent "
            "call last):\n  File \"x.py\", line 1\nValueError: dataset 'a': raw: bad\n")
    assert unwrap_worker_message(text) == "dataset 'a': raw: bad"
    assert unwrap_worker_message("plain") == "plain"
