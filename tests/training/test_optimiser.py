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


@pytest.mark.parametrize("shape", [(2, 3, 20, 20), (2, 3, 6, 20, 20)])
def test_channels_last_weights_give_the_same_step(shape):
    """The trainer's channels-last layout (`dacapo.pipeline.precision.channels_last`) is a
    layout, not a model: the same loss and the same updated weights as the default layout
    (to float rounding), the weights' strides channels-last."""
    from dacapo.pipeline.precision import channels_last

    dims = len(shape) - 2
    conv = torch.nn.Conv3d if dims == 3 else torch.nn.Conv2d
    results = []
    for last in (False, True):
        torch.manual_seed(0)
        model = torch.nn.Sequential(conv(3, 8, 3), torch.nn.ReLU(), conv(8, 2, 1))
        if last:
            model = channels_last(model, dims)
            fmt = torch.channels_last_3d if dims == 3 else torch.channels_last
            assert model[0].weight.is_contiguous(memory_format=fmt)
            assert not model[0].weight.is_contiguous()
        x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
        opt = torch.optim.Adam(model.parameters(), 1e-2)
        loss = model(x).square().mean()
        loss.backward()
        opt.step()
        results.append((float(loss.detach()), model[0].weight.detach().contiguous()))
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-5)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-5, atol=1e-6)


def test_the_trainer_keeps_channels_last_weights_and_resumes_them(container, tmp_path, tiny_run):
    """A run's model trains channels-last; its checkpoint loads into a model of the default
    layout (prediction) and a resumed run reproduces the uninterrupted one."""
    whole = train_run(_run(tiny_run, container, "fp32", 4), tmp_path / "a", progress=False)
    train_run(_run(tiny_run, container, "fp32", 2), tmp_path / "b", progress=False)
    resumed = train_run(_run(tiny_run, container, "fp32", 4), tmp_path / "b", progress=False)
    assert ([r["loss"] for r in resumed.training_stats()]
            == [r["loss"] for r in whole.training_stats()])
    state = whole.load_checkpoint(4)["model"]
    rc = _run(tiny_run, container, "fp32", 4)
    model = build_model(rc)
    model.load_state_dict(state)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    weights = [v for v in state.values() if v.ndim in (4, 5)]
    assert any(not w.is_contiguous() for w in weights)  # saved as trained: channels-last
