"""Pre-emption of a data-parallel run (issue 21 item 2): a SIGTERM that reaches one rank
stops every rank after the same step (`dacapo.training.distributed.agreed_signal`), with
that step's checkpoint, exit code 143 and one line from rank 0 (no torchrun traceback);
resumed, the run is the one-process run. torchrun itself, when signalled, forwards the
signal to every rank; ``dacapo train --nproc`` then exits with 128 + signal, not with
torchrun's traceback (`relaunch_with_torchrun`)."""

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
from torch.distributed.elastic.multiprocessing import ProcessFailure, SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

from dacapo.experiments.trainer_config import TrainerConfig
from dacapo.io.config_yaml import to_yaml
from dacapo.runs.run_dir import RunDir
from dacapo.training import distributed
from dacapo.training.loop import train_run

TOTAL = 1000


def _start(config: Path, root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dacapo.cli", "train", str(config), "--root", str(root),
         "--no-validate", "--nproc", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def _read_until(proc: subprocess.Popen, pattern: str, timeout: float = 180) -> str:
    deadline, text = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        assert line, f"ended before {pattern!r}: {text[-3000:]}"
        text += line
        if re.search(pattern, line):
            return text
    pytest.fail(f"no {pattern!r}: {text[-3000:]}")


def _ranks(pid: int) -> dict[int, int]:
    """{rank: pid} of the processes torchrun (``pid``) started."""
    out = {}
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        env = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        rank = [e for e in env if e.startswith(b"RANK=")]
        if rank:
            out[int(rank[0][5:])] = int(child)
    return out


def _finish(proc: subprocess.Popen, text: str, root: Path) -> tuple[int, str]:
    """(iteration of the one stop line, all stderr) of a stopped 2-rank run."""
    try:
        _, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            for pid in [*_ranks(proc.pid).values(), proc.pid]:
                os.kill(pid, signal.SIGKILL)
    text += rest
    assert proc.returncode == 143, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    found = re.findall(rf"^tiny: stopped by SIGTERM at iteration (\d+) of {TOTAL}; checkpoint "
                       r"(\S+); run the same command to resume$", text, re.M)
    assert len(found) == 1, text[-3000:]  # rank 0 says it
    iteration = int(found[0][0])
    assert Path(found[0][1]) == RunDir(root / "tiny").checkpoint_path(iteration)
    return iteration, text


@pytest.mark.parametrize("failure, code", [
    (SignalException("got signal", sigval=signal.SIGTERM), 143),
    (SignalException("got signal", sigval=signal.SIGINT), 130),
    (ChildFailedError("dacapo.cli", {0: ProcessFailure(0, 1, 143, "<N/A>")}), 143),
    (ChildFailedError("dacapo.cli", {1: ProcessFailure(1, 1, -9, "<N/A>")}), 137),
    (None, 0),
])
def test_launcher_exit_code(failure, code, monkeypatch):
    def torchrun_main(args):
        assert args == ["--standalone", "--nproc-per-node=2", "-m", "dacapo.cli", "train",
                        "run.yaml", "--root", "r"]
        if failure is not None:
            raise failure

    monkeypatch.setattr(distributed.torchrun, "main", torchrun_main)
    with pytest.raises(SystemExit) as info:
        distributed.relaunch_with_torchrun(2, ["train", "run.yaml", "--nproc", "2", "--root", "r"])
    assert info.value.code == code


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
def test_signal_stops_every_rank_after_the_same_step(tmp_path, tiny_data, tiny_run):
    container = tiny_data(tmp_path)
    rc = tiny_run(container, num_iterations=TOTAL, checkpoint_interval=255,
                  trainer_config=TrainerConfig(batch_size=2, learning_rate=1e-3,
                                               num_data_workers=0))
    config, root = tmp_path / "run.yaml", tmp_path / "runs"
    to_yaml(rc, config)
    run = RunDir(root / "tiny")

    # SIGTERM to rank 1 alone: rank 0 learns of it in the step's all-reduce
    proc = _start(config, root)
    text = _read_until(proc, rf"^tiny: iteration 1/{TOTAL}, ")
    os.kill(_ranks(proc.pid)[1], signal.SIGTERM)
    first, _ = _finish(proc, text, root)
    assert run.checkpoint_iterations() == [0, first]
    assert [int(r["iteration"]) for r in run.training_stats()] == list(range(1, first + 1))

    # finished in one process: the uninterrupted one-process run (batch 2)
    end = first + 3
    train_run(attr.evolve(rc, num_iterations=end), root, progress=False, validate=False)
    clean = train_run(attr.evolve(rc, num_iterations=end), tmp_path / "clean", progress=False,
                      validate=False)
    assert [int(r["iteration"]) for r in run.training_stats()] == list(range(1, end + 1))
    assert [r["loss"] for r in run.training_stats()] == pytest.approx(
        [r["loss"] for r in clean.training_stats()], rel=1e-5)
    a, b = run.load_checkpoint(end)["model"], clean.load_checkpoint(end)["model"]
    for key in b:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)
