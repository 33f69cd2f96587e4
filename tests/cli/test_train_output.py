"""What ``dacapo train --quiet`` prints (`dacapo.cli.main.train`, `dacapo.cli.log_setup`):
warnings and one final line only. Without ``--quiet``, off a terminal: one progress line
per `dacapo.training.progress.report_interval` iterations
(tests/system/test_preemption.py)."""

from __future__ import annotations

from dacapo.io.config_yaml import to_yaml
from dacapo.runs.run_dir import RunDir
from dacapo.runs.scores import main_criterion


def test_quiet_prints_warnings_and_the_final_line_only(tmp_path, tiny_data, tiny_run,
                                                         dacapo_cli):
    container = tiny_data(tmp_path)
    rc = tiny_run(container, num_iterations=4, validation_interval=4, checkpoint_interval=4)
    config = tmp_path / "tiny.yaml"
    config.write_text(to_yaml(rc))
    quiet = dacapo_cli("train", str(config), "--root", str(tmp_path / "runs"), "--quiet",
                       cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    run_dir = RunDir(tmp_path / "runs" / "tiny")
    best = run_dir.load_best()[main_criterion(rc.task_config.build())]
    # stderr: warnings only (the tiny run may or may not draw any); stdout: one line
    assert all(line.startswith("WARNING ") for line in quiet.stderr.splitlines()), quiet.stderr
    assert quiet.stdout.splitlines() == [quiet.stdout.strip()]
    line = quiet.stdout.strip()
    assert line.startswith(f"run directory: {run_dir.path}; trained to iteration 4; "
                           f"best cell__dice {best['value']:.4f} at iteration 4 (threshold=")
