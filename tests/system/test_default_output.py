"""What ``dacapo`` says at its default verbosity (issue 21 items 7, 9): ``apply`` names the
checkpoint and parameters it uses (before: only with ``-v``); notices pass the default
filter, other INFO records do not; ``dacapo --version`` exists."""

from __future__ import annotations

import logging
from importlib.metadata import version

from click.testing import CliRunner

from dacapo.cli.log_setup import FORMAT, DefaultVerbosity, NoticeFormatter
from dacapo.cli.main import DISTRIBUTION, cli
from dacapo.runs.scores import choose_checkpoint_and_parameters, parameters_dict, parameters_label
from dacapo.training.loop import train_run


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"dacapo {version(DISTRIBUTION)}\n"


def _record(level: int, notice: bool) -> logging.LogRecord:
    extra = {"notice": True} if notice else {}
    record = logging.LogRecord("dacapo.x", level, __file__, 1, "say %s", ("it",), None)
    record.__dict__.update(extra)
    return record


def test_default_verbosity_shows_warnings_and_notices():
    keep, fmt = DefaultVerbosity(), NoticeFormatter(FORMAT)
    assert keep.filter(_record(logging.INFO, notice=True))
    assert not keep.filter(_record(logging.INFO, notice=False))
    assert keep.filter(_record(logging.WARNING, notice=False))
    assert fmt.format(_record(logging.INFO, notice=True)) == "say it"
    assert fmt.format(_record(logging.WARNING, notice=True)) == "WARNING dacapo.x: say it"


def test_apply_names_checkpoint_and_parameters(tmp_path, tiny_data, tiny_run, dacapo_cli):
    container = tiny_data(tmp_path)
    rc = tiny_run(container, num_iterations=2, checkpoint_interval=2, validation_interval=2)
    run = train_run(rc, tmp_path / "runs", progress=False)
    raw, out = f"{container}/validate/raw", tmp_path / "out.zarr" / "seg"
    result = dacapo_cli("apply", str(run.path), "--input", raw, "--output", str(out),
                        "--workers", "0")
    assert result.returncode == 0, result.stderr
    iteration, parameters = choose_checkpoint_and_parameters(
        run, rc.task_config.build(), None, None)
    assert (f"applying tiny to {raw}: checkpoint {run.checkpoint_path(iteration)} "
            f"(iteration {iteration}), parameters "
            f"{parameters_label(parameters_dict(parameters))}\n") in result.stderr
    assert f"wrote {out}" in result.stdout
