"""What a process needs to run a model: device, model built (and loaded) from a run's
configs, optimiser, and the run's log file."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

import torch

from dacapo.experiments.run_config import RunConfig
from dacapo.store.run_dir import load_checkpoint_file


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


def make_optimizer(model: torch.nn.Module, trainer_config) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if trainer_config.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=trainer_config.learning_rate,
               weight_decay=trainer_config.weight_decay)


@contextmanager
def log_to_file(path: Path):
    """Also send dacapo's log records to ``path`` while inside the block."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger("dacapo")
    old_level = root.level
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
