"""Fixtures of the training tests: the tiny data once per test module, and a wait for a
checkpoint of a training process."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def container(tmp_path_factory, tiny_data) -> Path:
    """The tiny data, written once per test module."""
    return tiny_data(tmp_path_factory.mktemp("data"))


def _wait_past_checkpoint(proc: subprocess.Popen, run_dir, interval: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        rows = run_dir.training_stats()
        last = int(rows[-1]["iteration"]) if rows else 0
        if last >= interval + 2 and last % interval >= 2:
            return
        assert proc.poll() is None, f"training ended early: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "training did not get going"
        time.sleep(0.01)


@pytest.fixture(scope="session")
def wait_past_checkpoint() -> Callable[..., None]:
    """``wait_past_checkpoint(proc, run_dir, interval, timeout)``: poll ``run_dir``'s training
    stats until the run is at least two iterations past a checkpoint (every ``interval``) after
    the first one, so that a kill then loses work."""
    return _wait_past_checkpoint
