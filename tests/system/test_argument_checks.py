"""Numbers given on the command line or in a config are checked: a plan's budget is finite,
positive and at most a day; voxel sizes are positive integers; an integer config field
takes an integer. Each bad value: exit code 2, one ``error:`` line naming it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from dacapo.cli.main import cli
from dacapo.io.config_yaml import to_yaml
from dacapo.planning.planner import MAX_MINUTES


@pytest.fixture(scope="module")
def container(tmp_path_factory, tiny_data) -> Path:
    return tiny_data(tmp_path_factory.mktemp("data"))


def _error(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("minutes", ["inf", "100000", "1440.5", "nan", "0", "-3"])
def test_plan_refuses_a_budget_outside_a_day(minutes, container, tmp_path):
    """``inf`` planned 20 iterations; 100000 planned 5 million, a checkpoint every 1.26 M."""
    out = tmp_path / "p.yaml"
    line = _error("plan", f"{container}/train/fg", "--raw", f"{container}/train/raw",
                  "--task", "distance", "--minutes", minutes, "-o", str(out))
    assert line.startswith("error: --minutes: the training budget must be more than 0 and at "
                           "most 1440 minutes (24 h), got "), line
    assert not out.exists()


def test_a_day_is_the_largest_budget(container):
    from dacapo.planning.planner import plan_run

    assert MAX_MINUTES == 1440
    rc, _ = plan_run([f"{container}/train/fg"], [f"{container}/train/raw"], "distance",
                     minutes=MAX_MINUTES)
    assert rc.checkpoint_interval == rc.num_iterations // 4 > 0


@pytest.mark.parametrize("voxel_size", ["0,150,150", "-4,8,8"])
def test_convert_refuses_voxel_sizes_that_are_not_positive(voxel_size, tmp_path):
    """``--voxel-size 0,150,150`` ended in a ZeroDivisionError."""
    source = tmp_path / "stack.tif"
    tifffile.imwrite(source, np.zeros((4, 8, 8), np.uint8))
    out = tmp_path / "o.zarr" / "raw"
    line = _error("convert", str(source), str(out), "--voxel-size", voxel_size)
    assert line == f"error: --voxel-size: voxel sizes must be positive integers, got {voxel_size}"
    assert not out.parent.exists()


@pytest.mark.parametrize("value,shown", [("40.5", "40.5"), ("forty", "'forty'"),
                                         ("true", "True")])
@pytest.mark.parametrize("command", ["train", "verify"])
def test_an_integer_field_takes_an_integer(value, shown, command, container, tmp_path, tiny_run):
    """``num_iterations: 40.5`` trained 40 iterations; ``forty`` was refused without its value."""
    config = tmp_path / "run.yaml"
    text = to_yaml(tiny_run(container))
    assert "\nnum_iterations: 6\n" in text
    config.write_text(text.replace("\nnum_iterations: 6\n", f"\nnum_iterations: {value}\n"))
    args = ["--root", str(tmp_path / "runs")] if command == "train" else []
    line = _error(command, str(config), *args)
    assert line == f"error: expected an integer, got {shown} @ RunConfig.num_iterations", line
    assert not (tmp_path / "runs").exists()
