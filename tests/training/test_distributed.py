"""Data-parallel training (torchrun, gloo on the CPU): 2 ranks × 1 sample reproduce
1 process × 2 samples, a killed 2-rank run resumes, and resumes on another world size."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dacapo.errors import InputError
from dacapo.experiments.trainer_config import TrainerConfig
from dacapo.io.config_yaml import to_yaml
from dacapo.runs.run_dir import RunDir
from dacapo.training.batches import BatchProvider
from dacapo.training.distributed import World, rank_slots
from dacapo.training.loop import train_run

ITERATIONS = 20


def _config(tiny_run, container, num_iterations=ITERATIONS):
    return tiny_run(container, num_iterations=num_iterations, checkpoint_interval=5,
                    trainer_config=TrainerConfig(batch_size=2, learning_rate=1e-3,
                                                 num_data_workers=0))


@pytest.fixture(scope="module")
def reference(container, tmp_path_factory, tiny_run):
    """One process, batch 2, 24 iterations (checkpoints 5, 10, 15, 20, 24)."""
    return train_run(_config(tiny_run, container, 24), tmp_path_factory.mktemp("ref"),
                     progress=False)


def _losses(run_dir: RunDir) -> list[float]:
    return [r["loss"] for r in run_dir.training_stats()]


def _assert_same_state(a: dict, b: dict) -> None:
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=1e-4, atol=1e-6)
    counts_a, counts_b = pickle.loads(a["class_counts"]), pickle.loads(b["class_counts"])
    assert counts_a.keys() == counts_b.keys() == {(0, 0), (0, 1)}
    for key in counts_a:  # integer class counts: exactly equal
        np.testing.assert_array_equal(counts_a[key], counts_b[key])


def test_rank_shares_of_a_batch_are_the_batch(container, tiny_run):
    """Rank r of W draws slots r·B/W ..: the shares stacked are the one-process batch."""
    rc = _config(tiny_run, container)
    whole = BatchProvider(rc)
    halves = [BatchProvider(rc, slots=rank_slots(2, World(rank, 2))) for rank in (0, 1)]
    for index in (0, 3):
        batch = whole[index]
        parts = [h[index] for h in halves]
        for name in ("raw", "target", "weight"):
            np.testing.assert_array_equal(batch[name],
                                          np.concatenate([p[name] for p in parts]))
        counts = pickle.loads(batch["counts"])
        assert counts.keys() == {(0, 0), (0, 1)}
        for rank, part in enumerate(parts):
            assert pickle.loads(part["counts"]).keys() == {(0, rank)}
    with pytest.raises(InputError, match="batch_size: 3 is the global batch"):
        rank_slots(3, World(0, 2))


def test_two_ranks_reproduce_one_process(container, reference, tmp_path, dacapo_cli, tiny_run):
    config = tmp_path / "tiny.yaml"
    to_yaml(_config(tiny_run, container), config)
    result = dacapo_cli("train", str(config), "--root", str(tmp_path / "runs"), "--quiet",
                        "--no-validate", "--nproc", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("run directory:") == 1  # rank 0 reports
    two = RunDir(tmp_path / "runs" / "tiny")
    assert _losses(two) == pytest.approx(_losses(reference)[:ITERATIONS], rel=1e-5)
    assert two.checkpoint_iterations() == [0, 5, 10, 15, 20]
    _assert_same_state(two.load_checkpoint(ITERATIONS), reference.load_checkpoint(ITERATIONS))


def _kill_tree(pid: int) -> None:
    """SIGKILL torchrun's ranks (each in its own session) and torchrun."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for child in (children.read_text().split() if children.exists() else []):
        os.kill(int(child), signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
def test_killed_two_rank_run_resumes_on_any_world_size(container, reference, tmp_path, dacapo_cli,
                                                       wait_past_checkpoint, tiny_run):
    config = tmp_path / "tiny.yaml"
    to_yaml(_config(tiny_run, container), config)
    runs = tmp_path / "runs"
    run_dir = RunDir(runs / "tiny")
    cmd = [sys.executable, "-m", "dacapo.cli", "train", str(config), "--root", str(runs),
           "--quiet", "--no-validate", "--nproc", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        wait_past_checkpoint(proc, run_dir, 5, 240)
    finally:
        _kill_tree(proc.pid)
        proc.wait()
    killed_at = run_dir.latest_checkpoint()
    assert 5 <= killed_at < ITERATIONS and killed_at % 5 == 0
    assert max(int(r["iteration"]) for r in run_dir.training_stats()) > killed_at

    # resumed on 2 ranks: every iteration once, the uninterrupted run's losses and weights
    result = dacapo_cli("train", str(config), "--root", str(runs), "--quiet", "--no-validate",
                        "--nproc", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    stats = run_dir.training_stats()
    assert [int(r["iteration"]) for r in stats] == list(range(1, ITERATIONS + 1))
    assert _losses(run_dir) == pytest.approx(_losses(reference)[:ITERATIONS], rel=1e-5)
    assert f"resuming tiny from iteration {killed_at}" in (run_dir.logs / "train.log").read_text()
    _assert_same_state(run_dir.load_checkpoint(ITERATIONS),
                       reference.load_checkpoint(ITERATIONS))

    # continued in one process (world size 1): still the same run
    train_run(_config(tiny_run, container, 24), runs, progress=False, validate=False)
    assert _losses(run_dir) == pytest.approx(_losses(reference), rel=1e-5)
    _assert_same_state(run_dir.load_checkpoint(24), reference.load_checkpoint(24))
