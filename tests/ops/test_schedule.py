"""Learning-rate schedules (`dacapo.ops.schedule`): the formulas, and every parameter group
of an optimiser set."""

from __future__ import annotations

import pytest
import torch

from dacapo.experiments.trainer_config import TrainerConfig
from dacapo.ops.schedule import learning_rate_at, set_learning_rate


def test_schedules_by_formula():
    lr, total, w = 1e-3, 110, 10
    assert learning_rate_at(0, total, lr, "cosine", w) == pytest.approx(lr / 10)
    assert learning_rate_at(9, total, lr, "cosine", w) == pytest.approx(lr)
    assert learning_rate_at(10, total, lr, "cosine", w) == pytest.approx(lr)  # t = 0
    assert learning_rate_at(60, total, lr, "cosine", w) == pytest.approx(lr / 2)  # t = 1/2
    assert learning_rate_at(60, total, lr, "cosine", w, 0.1) == pytest.approx(lr * 0.55)
    assert learning_rate_at(60, total, lr, "poly", w) == pytest.approx(lr * 0.5**0.9)
    assert learning_rate_at(109, total, lr, "constant", w) == lr
    with pytest.raises(ValueError, match="lr_schedule"):
        learning_rate_at(0, 10, lr, "step")


def test_set_learning_rate_sets_every_group():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([{"params": [p]}, {"params": [torch.nn.Parameter(torch.zeros(1))]}])
    tc = TrainerConfig(learning_rate=0.01, lr_schedule="cosine", warmup_iterations=4)
    assert set_learning_rate(opt, tc, 1, 100) == pytest.approx(0.005)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.005, 0.005])
    assert TrainerConfig(lr_schedule="x").problems()[0].startswith("trainer.lr_schedule")
