"""The optimiser and, for fp16 training, the loss scaler (its state is checkpointed)."""

from __future__ import annotations

import torch


def make_optimizer(model: torch.nn.Module, trainer_config) -> torch.optim.Optimizer:
    """Adam or AdamW over the model's parameters, as the trainer config says."""
    cls = torch.optim.AdamW if trainer_config.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=trainer_config.learning_rate,
               weight_decay=trainer_config.weight_decay)


def make_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """The loss scaler fp16 training needs (None otherwise)."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None
