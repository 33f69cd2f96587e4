"""A run's model on a device: built from its configs (deterministically from the run
seed) and loaded from a checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from dacapo.experiments.run_config import RunConfig
from dacapo.runs.checkpoint_files import load_checkpoint_file


def choose_device(name: str | None) -> torch.device:
    """``name`` as a torch device; default cuda if available, else cpu."""
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_model(run_config: RunConfig, task=None):
    """The run's model, initialised deterministically from the run seed."""
    task = task or run_config.task_config.build()
    torch.manual_seed(int(run_config.seed))
    return task.create_model(run_config.architecture_config)


def load_weights(model: torch.nn.Module, checkpoint: str | Path) -> torch.nn.Module:
    """``model`` with the weights of a checkpoint file (or a bare state dict file)."""
    state = load_checkpoint_file(checkpoint)
    model.load_state_dict(state["model"] if "model" in state else state)
    return model
