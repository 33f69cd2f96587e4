"""The training loop: kill + resume through the CLI, determinism, snapshots, resumed
validation."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
import zarr
from funlib.persistence import Array

from dacapo.experiments.trainer_config import TrainerConfig
from dacapo.io.config_yaml import to_yaml
from dacapo.runs.run_dir import RunDir
from dacapo.training.loop import train_run


def test_cli_train_killed_after_checkpoint_resumes(container, tmp_path, tiny_run, dacapo_cli,
                                                   wait_past_checkpoint):
    rc = tiny_run(
        container, num_iterations=60, checkpoint_interval=5, validation_interval=30,
    )
    config = tmp_path / "tiny.yaml"
    to_yaml(rc, config)
    runs = tmp_path / "runs"
    run_dir = RunDir(runs / rc.name)
    cmd = [sys.executable, "-m", "dacapo.cli", "train", str(config), "--root", str(runs), "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_past_checkpoint(proc, run_dir, 5, 180)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_stats = {int(r["iteration"]): r["loss"] for r in run_dir.training_stats()}
    killed_at = run_dir.latest_checkpoint()
    checkpoints_before = run_dir.checkpoint_iterations()
    assert 5 <= killed_at < 60 and killed_at % 5 == 0
    redone = {i: v for i, v in killed_stats.items() if i > killed_at}
    assert redone, "no iteration after the checkpoint to compare with"

    result = dacapo_cli("train", str(config), "--root", str(runs), "--quiet")
    assert result.returncode == 0, result.stderr

    # iteration continued from the checkpoint: every iteration once, in order
    stats = run_dir.training_stats()
    assert [int(r["iteration"]) for r in stats] == list(range(1, 61))
    for i, loss in killed_stats.items():
        if i <= killed_at:  # kept as written before the kill
            assert stats[i - 1]["loss"] == loss
    # the iterations redone after the resume reproduce the killed run's losses (same
    # batches, weights, optimiser state and class counts)
    for i, loss in redone.items():
        assert stats[i - 1]["loss"] == pytest.approx(loss, rel=1e-5)
    assert f"resuming {rc.name} from iteration {killed_at}" in (
        run_dir.logs / "train.log").read_text()
    # no file lost: every checkpoint of both runs is there, complete
    its = run_dir.checkpoint_iterations()
    assert set(checkpoints_before) <= set(its)
    assert its == list(range(0, 61, 5))
    for it in its:
        assert run_dir.load_checkpoint(it)["iteration"] == it
    assert not list(run_dir.checkpoints.glob(".*"))
    # validation ran at 30 and 60
    assert {r["iteration"] for r in run_dir.validation_scores()} == {30, 60}
    assert run_dir.load_best()
    # --quiet: one line (tests/cli/test_train_output.py)
    assert result.stdout.startswith(f"run directory: {run_dir.path}; trained to iteration 60")


def test_training_deterministic_and_worker_independent(container, tmp_path, tiny_run):
    """Same seed -> same losses and weights, in-process batches or a data worker."""
    runs = []
    for workers, root in ((0, "a"), (0, "b"), (1, "c")):
        rc = tiny_run(container, num_iterations=4, checkpoint_interval=2,
                      trainer_config=TrainerConfig(batch_size=2, num_data_workers=workers))
        runs.append(train_run(rc, tmp_path / root, progress=False))
    losses = [[r["loss"] for r in run.training_stats()] for run in runs]
    assert len(losses[0]) == 4 and all(math.isfinite(v) for v in losses[0])
    assert losses[0] == losses[1] == losses[2]
    states = [run.load_checkpoint(4)["model"] for run in runs]
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key])
        assert torch.equal(states[0][key], states[2][key])
    # another seed gives other batches
    other = train_run(tiny_run(container, num_iterations=2, seed=4), tmp_path / "d",
                      progress=False)
    assert [r["loss"] for r in other.training_stats()] != losses[0][:2]


def test_snapshot_holds_the_batch(container, tmp_path, tiny_run):
    rc = tiny_run(container, num_iterations=2, snapshot_interval=2)
    run_dir = train_run(rc, tmp_path, progress=False)
    snap = run_dir.snapshots / "00000002.zarr"
    # each snapshot array is an OME-NGFF image with the data at level s0
    arrays = {n: zarr.open_array(str(snap / n / "s0"), mode="r") for n in
              ("raw", "gt", "mask", "target", "weight", "prediction")}
    assert arrays["prediction"].shape == arrays["target"].shape == arrays["weight"].shape
    # target = the predictor's target of the stored (augmented) gt, at the output ROI
    from dacapo.io.ome_write import open_ds

    gt = open_ds(str(snap / "gt"), mode="r")
    target = open_ds(str(snap / "target"), mode="r")
    predictor = rc.task_config.build().predictor
    expected = predictor.create_target(
        Array(gt[gt.roi], gt.roi.offset, gt.voxel_size)).to_ndarray(target.roi)
    if expected.ndim == len(target.shape) + 1:  # one channel: stored without a channel axis
        assert expected.shape[0] == 1
        expected = expected[0]
    np.testing.assert_allclose(target[target.roi], expected, atol=1e-6)
    raw = open_ds(str(snap / "raw"), mode="r")
    assert raw.roi.contains(target.roi) and gt.roi.contains(target.roi)


def test_resume_redoes_an_interrupted_validation(container, tmp_path, tiny_run):
    rc = tiny_run(container, num_iterations=2, validation_interval=2, checkpoint_interval=2)
    run_dir = train_run(rc, tmp_path, progress=False)
    assert {r["iteration"] for r in run_dir.validation_scores()} == {2}
    run_dir.validation_scores_file.unlink()  # as if killed while validating iteration 2
    (run_dir.path / "best.json").unlink()
    train_run(tiny_run(container, num_iterations=4, validation_interval=2, checkpoint_interval=2),
              tmp_path, progress=False)
    assert {r["iteration"] for r in run_dir.validation_scores()} == {2, 4}
    assert run_dir.load_best()
