"""Fixtures of the pipeline tests: random batch-norm statistics for the prediction tests, a
tiny trained and validated run for the validation and apply tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from dacapo.training.loop import train_run


def _randomise_batch_norm(model: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)


@pytest.fixture(scope="session")
def randomise_batch_norm() -> Callable[..., None]:
    """``randomise_batch_norm(model, seed=0)``: running statistics and affine parameters of
    every batch norm of ``model`` set to random values (fresh ones are the identity, which
    would hide a wrong eval mode)."""
    return _randomise_batch_norm


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data, tiny_run):
    """A tiny Distance run, 8 iterations, validated at 4 and 8 (in-process prediction);
    trained once per test module that asks for it."""
    root = tmp_path_factory.mktemp("pipeline")
    container = tiny_data(root)
    rc = tiny_run(container, num_iterations=8, validation_interval=4, checkpoint_interval=4)
    run_dir = train_run(rc, root / "runs", progress=False)
    return rc, run_dir, container
