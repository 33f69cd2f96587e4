"""Pre-emption (issue 21 item 2): SIGTERM (a scheduler) or SIGINT (Ctrl-C) during
``dacapo train`` finishes the step, writes its checkpoint and exits with 128 + signal,
saying in one line where it stopped; the re-run says where it resumes and ends with the
weights of an uninterrupted run. Before, the run died without a checkpoint (the planned
interval was 255 iterations: everything lost) and the re-run started at 0 silently.

Off a terminal (here: a pipe) training prints a progress line every few iterations
(issue 21 item 7; before, nothing until the first validation)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import attr
import pytest
import torch

from dacapo.experiments.trainer_config import TrainerConfig
from dacapo.io.config_yaml import to_yaml
from dacapo.runs.run_dir import RunDir
from dacapo.training.loop import train_run


@pytest.fixture(scope="module")
def container(tmp_path_factory, tiny_data) -> Path:
    return tiny_data(tmp_path_factory.mktemp("data"))


TOTAL = 1000  # ~10 ms per iteration here: far from done when the signal arrives
INTERVAL = 255  # the planned checkpoint interval


def start_train(args: list[str]) -> subprocess.Popen:
    """``dacapo train ARGS`` in its own process group, its output piped (not a terminal)."""
    return subprocess.Popen(
        [sys.executable, "-m", "dacapo.cli", "train", *args], start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # the thread count of the uninterrupted run it is compared with (sums in other orders)
        env={**os.environ, "PYTHONWARNINGS": "ignore",
             "OMP_NUM_THREADS": str(torch.get_num_threads())},
    )


def read_until(proc: subprocess.Popen, pattern: str, timeout: float = 120) -> list[str]:
    """stderr lines of ``proc`` up to the first that matches ``pattern``."""
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            pytest.fail(f"ended before {pattern!r}: {''.join(lines)[-3000:]}")
        lines.append(line)
        if re.search(pattern, line):
            return lines
    pytest.fail(f"no {pattern!r} within {timeout} s: {''.join(lines)[-3000:]}")


def stopped_at(text: str, name: str, signame: str, root: Path) -> int:
    """The iteration of the one stop line in ``text``; checks what it says."""
    found = re.findall(rf"^{name}: stopped by {signame} at iteration (\d+) of {TOTAL}; "
                       rf"checkpoint (\S+); run the same command to resume$", text, re.M)
    assert len(found) == 1, text
    iteration, checkpoint = int(found[0][0]), found[0][1]
    assert Path(checkpoint) == RunDir(root / name).checkpoint_path(iteration)
    return iteration


def assert_same_weights(a: dict, b: dict) -> None:
    for key in b["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for key, state in b["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(a["optimizer"]["state"][key][name]),
                               torch.as_tensor(value)), (key, name)


@pytest.mark.parametrize("signum, code, workers", [(signal.SIGTERM, 143, 1),
                                                   (signal.SIGINT, 130, 0)])
def test_signal_checkpoints_the_step_and_the_rerun_resumes_it(signum, code, workers, container,
                                                              tmp_path, tiny_run, dacapo_cli):
    rc = tiny_run(container, num_iterations=TOTAL, checkpoint_interval=INTERVAL,
                  trainer_config=TrainerConfig(batch_size=1, num_data_workers=workers))
    config, root = tmp_path / "run.yaml", tmp_path / "runs"
    to_yaml(rc, config)
    proc = start_train([str(config), "--root", str(root)])
    try:
        first = read_until(proc, rf"^tiny: iteration 1/{TOTAL}, loss ")
        # like a scheduler (every process of the job) or Ctrl-C (the terminal's group):
        # the data worker gets it too, and must leave the decision to the training process
        os.killpg(proc.pid, signum)
        _, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    err = "".join(first) + rest
    assert proc.returncode == code, err
    assert first[0] == "starting tiny at iteration 0 (no checkpoint)\n"
    assert "Traceback" not in err and "\r" not in err
    stop = stopped_at(err, "tiny", signal.Signals(signum).name, root)
    assert 1 <= stop < INTERVAL  # before the planned checkpoint: nothing lost
    run = RunDir(root / "tiny")
    assert run.checkpoint_iterations() == [0, stop]
    assert run.load_checkpoint(stop)["iteration"] == stop
    assert [int(r["iteration"]) for r in run.training_stats()] == list(range(1, stop + 1))

    # the re-run (a shorter schedule; the learning rate is constant) says where it resumes
    end = stop + 3
    short = attr.evolve(rc, num_iterations=end)
    to_yaml(short, config)
    result = dacapo_cli("train", str(config), "--root", str(root))
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(
        f"resuming tiny from iteration {stop} (checkpoint {run.checkpoint_path(stop)})\n")
    # ... and ends where an uninterrupted run ends
    clean = train_run(short, tmp_path / "clean", progress=False, validate=False)
    assert_same_weights(run.load_checkpoint(end), clean.load_checkpoint(end))
    assert [(r["iteration"], r["loss"]) for r in run.training_stats()] == [
        (r["iteration"], r["loss"]) for r in clean.training_stats()]


def test_progress_lines_off_a_terminal(container, tmp_path, tiny_run, dacapo_cli):
    rc = tiny_run(container, num_iterations=40, checkpoint_interval=20)
    config = tmp_path / "run.yaml"
    to_yaml(rc, config)
    result = dacapo_cli("train", str(config), "--root", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "starting tiny at iteration 0 (no checkpoint)"
    progress = [line for line in lines if line.startswith("tiny: iteration ")]
    # the first iteration, then every 2 (about 20 lines a run), whole lines
    assert [int(re.match(r"tiny: iteration (\d+)/40, loss ", p).group(1)) for p in progress] \
        == [1, *range(2, 41, 2)]
    assert "\r" not in result.stderr
    # --quiet: tests/cli/test_train_output.py


def test_ctrl_c_twice_after_the_stop_prints_no_traceback(container, tmp_path, tiny_run):
    """Ctrl-C, then Ctrl-C again while the stop is being carried out (a newcomer's
    reflex): one stop line, exit 130, and no "Exception ignored ... KeyboardInterrupt"
    traceback from the data workers' teardown (a new user's walk-through found one)."""
    rc = tiny_run(container, num_iterations=TOTAL, checkpoint_interval=INTERVAL,
                  trainer_config=TrainerConfig(batch_size=1, num_data_workers=1))
    config, root = tmp_path / "run.yaml", tmp_path / "runs"
    to_yaml(rc, config)
    proc = start_train([str(config), "--root", str(root)])
    try:
        first = read_until(proc, rf"^tiny: iteration 1/{TOTAL}, loss ")
        os.killpg(proc.pid, signal.SIGINT)
        stop = read_until(proc, r"^tiny: stopped by SIGINT at iteration ")
        os.killpg(proc.pid, signal.SIGINT)  # the second Ctrl-C, during the teardown
        _, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    err = "".join(first + stop) + rest
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    stopped_at(err, "tiny", "SIGINT", root)
