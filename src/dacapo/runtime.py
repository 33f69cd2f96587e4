"""What a process needs to run a model: device, model built (and loaded) from a run's
configs, optimiser, numeric precision, and the run's log file.

Precision (``trainer_config.precision``, ``dacapo apply --precision``): ``fp32``; ``bf16``
or ``fp16`` run the model under `torch.autocast` (convolutions and matrix products in the
low precision, reductions in fp32); the loss is computed in fp32 on the fp32-cast
prediction; ``fp16`` training scales the loss with a `torch.amp.GradScaler` (its state is
checkpointed). bf16 works on CPUs and recent GPUs; fp16 is meant for GPUs (on a CPU it
runs, slowly).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager, nullcontext
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


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: str, device: torch.device):
    """A context running the model in ``precision`` on ``device`` (nothing for fp32)."""
    if PRECISIONS[precision] is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=PRECISIONS[precision])


def make_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """The loss scaler fp16 training needs (None otherwise)."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


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
