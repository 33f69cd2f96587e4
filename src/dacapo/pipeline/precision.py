"""Numeric precision and memory layout of the model's passes.

Precision (``trainer_config.precision``, ``dacapo apply --precision``): ``fp32``; ``bf16``
or ``fp16`` run the model under `torch.autocast` (convolutions and matrix products in the
low precision, reductions in fp32); the loss is computed in fp32 on the fp32-cast
prediction; ``fp16`` training scales the loss (`dacapo.training.optimiser.make_scaler`).
bf16 works on CPUs and recent GPUs; fp16 is meant for GPUs (on a CPU it runs, slowly).
`native_bf16` says whether a device computes bf16 in hardware (where `dacapo plan` picks it).

Layout (`channels_last`): the trainer keeps the model's weights channels-last (NHWC /
NDHWC), where oneDNN's CPU convolutions are fastest: training steps of the planned UNets
take 0.79-1.00x the time of the default layout in fp32 and 0.70-0.97x in bf16
(`benchmarks/bench_plan_cost.py --layout`, the six 20-minute plans, one thread, idle).
Values are the same up to the order of summation.
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


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware: a CUDA GPU that supports it, or a CPU
    with AVX-512 BF16 / AMX (oneDNN's bf16 kernels; elsewhere bf16 is emulated, slower
    than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def channels_last(module: torch.nn.Module, dims: int) -> torch.nn.Module:
    """``module`` with its parameters in the channels-last layout of ``dims`` spatial axes
    (2: NHWC, 3: NDHWC; other dims: unchanged)."""
    formats = {2: torch.channels_last, 3: torch.channels_last_3d}
    return module.to(memory_format=formats[dims]) if dims in formats else module
