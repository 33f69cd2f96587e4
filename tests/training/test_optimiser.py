"""Mixed-precision training: the forward pass in bf16/fp16, the loss in fp32, fp16's
gradient scaler checkpointed and resumed."""

from __future__ import annotations

import math

import pytest
import torch

from dacapo.experiments.trainer_config import TrainerConfig
from dacapo.runs.model_builder import build_model
from dacapo.training.loop import train_run, train_step
from dacapo.training.optimiser import make_optimizer, make_scaler


def _run(tiny_run, container, precision, iterations=2):
    return tiny_run(container, num_iterations=iterations, checkpoint_interval=2,
                    trainer_config=TrainerConfig(batch_size=1, learning_rate=1e-3,
                                                 num_data_workers=0, precision=precision))


def test_bf16_step_is_fp32_loss_of_a_bf16_forward(container, tiny_run):
    rc = _run(tiny_run, container, "bf16")
    task = rc.task_config.build()
    model = build_model(rc, task)
    x = torch.rand(1, 1, *model.input_shape)
    with torch.no_grad():
        y = model(x)
    target, weight = torch.rand_like(y), torch.ones_like(y)
    expected_fp32 = float(task.loss.compute(y, target, weight))
    value, prediction = train_step(model, make_optimizer(model, rc.trainer_config), task.loss,
                                   x, target, weight, "bf16")
    assert prediction.dtype == torch.float32
    assert value != expected_fp32  # the forward pass really ran in bf16 ...
    assert value == pytest.approx(expected_fp32, rel=2e-2)  # ... and the loss is the loss


def test_bf16_training_matches_fp32_at_the_first_iteration(container, tmp_path, tiny_run):
    fp32 = train_run(_run(tiny_run, container, "fp32"), tmp_path / "a", progress=False)
    bf16 = train_run(_run(tiny_run, container, "bf16"), tmp_path / "b", progress=False)
    first = [run.training_stats()[0]["loss"] for run in (fp32, bf16)]
    assert first[1] == pytest.approx(first[0], rel=2e-2)  # same weights and batch
    assert all(math.isfinite(r["loss"]) for r in bf16.training_stats())


def test_fp16_scaler_is_checkpointed_and_resumed(container, tmp_path, tiny_run):
    run_dir = train_run(_run(tiny_run, container, "fp16", 2), tmp_path, progress=False)
    state = run_dir.load_checkpoint(2)
    assert state["scaler"]["scale"] > 0
    run_dir = train_run(_run(tiny_run, container, "fp16", 4), tmp_path, progress=False)
    assert [int(r["iteration"]) for r in run_dir.training_stats()] == [1, 2, 3, 4]
    assert all(math.isfinite(r["loss"]) for r in run_dir.training_stats())
    assert make_scaler("fp32", torch.device("cpu")) is None
