"""Shared fixtures: example configs of every task kind and small architectures."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "2")
torch.set_num_threads(2)


@pytest.fixture
def seeded():
    torch.manual_seed(0)
    yield
