"""Numeric precision of the model's forward pass.

Precision (``trainer_config.precision``, ``dacapo apply --precision``): ``fp32``; ``bf16``
or ``fp16`` run the model under `torch.autocast` (convolutions and matrix products in the
low precision, reductions in fp32); the loss is computed in fp32 on the fp32-cast
prediction; ``fp16`` training scales the loss (`dacapo.training.optimiser.make_scaler`).
bf16 works on CPUs and recent GPUs; fp16 is meant for GPUs (on a CPU it runs, slowly).
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: str, device: torch.device):
    """A context running the model in ``precision`` on ``device`` (nothing for fp32)."""
    if PRECISIONS[precision] is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=PRECISIONS[precision])
