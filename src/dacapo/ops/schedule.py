"""Learning-rate schedules as pure functions of the iteration (resume-safe: no state).

With base rate ``lr``, ``W`` warm-up iterations and ``N`` iterations in all, the rate of
the step that produces iteration ``i + 1`` (``i = 0 .. N-1``) is

- warm-up (``i < W``): ``lr * (i + 1) / W`` (linear, Goyal et al. 2017);
- after it, with ``t = (i - W) / max(1, N - W)`` in [0, 1) and final fraction ``f``:
  ``constant``: ``lr``;
  ``cosine``: ``lr * (f + (1 - f) * (1 + cos(pi t)) / 2)`` (Loshchilov & Hutter 2017,
  SGDR without restarts);
  ``poly``: ``lr * (f + (1 - f) * (1 - t) ** 0.9)`` (nnU-Net's "poly" decay).
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine", "poly")


def learning_rate_at(i: int, total: int, lr: float, schedule: str = "constant",
                     warmup: int = 0, final_fraction: float = 0.0) -> float:
    """The learning rate of step ``i`` (0-based) of ``total`` (see the module docstring)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"trainer.lr_schedule: must be one of {list(SCHEDULES)}, got {schedule!r}")
    if warmup > 0 and i < warmup:
        return lr * (i + 1) / warmup
    if schedule == "constant":
        return lr
    t = min(1.0, max(0.0, (i - warmup) / max(1, total - warmup)))
    if schedule == "cosine":
        shape = (1 + math.cos(math.pi * t)) / 2
    else:
        shape = (1 - t) ** 0.9
    return lr * (final_fraction + (1 - final_fraction) * shape)


def set_learning_rate(optimizer, trainer_config, i: int, total: int) -> float:
    """Set every parameter group of ``optimizer`` to the rate of step ``i``; return it."""
    lr = learning_rate_at(
        i, total, trainer_config.learning_rate, getattr(trainer_config, "lr_schedule", "constant"),
        getattr(trainer_config, "warmup_iterations", 0),
        getattr(trainer_config, "final_lr_fraction", 0.0),
    )
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr
