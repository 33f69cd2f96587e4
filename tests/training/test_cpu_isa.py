"""A bf16 training step of a sections network in a fresh process that imports dacapo first:
on CPUs with AMX, torch 2.13.0+cpu's oneDNN AMX backward convolution corrupts the heap at
this size (the process dies with a segfault or "double free"); dacapo caps oneDNN at
AVX-512 BF16 (`dacapo.__init__`). The step must finish and its weight gradient match the
fp32 step's within bf16 precision."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = r"""
import dacapo, torch
torch.manual_seed(0)
torch.set_num_threads(1)
m = torch.nn.Sequential(torch.nn.Conv3d(1, 12, (1, 3, 3)), torch.nn.ReLU(),
                        torch.nn.Conv3d(12, 12, (1, 3, 3)), torch.nn.ReLU(),
                        torch.nn.Conv3d(12, 5, 1)).to(memory_format=torch.channels_last_3d)
x = torch.randn(2, 1, 3, 128, 128)
grads = []
for bf16 in (False, True):
    m.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        y = m(x)
    (y.float() ** 2).mean().backward()
    grads.append(m[0].weight.grad.clone())
rel = ((grads[1] - grads[0]).norm() / grads[0].norm()).item()
print(rel)
"""


def test_bf16_backward_of_a_sections_network_runs_after_import():
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.strip().splitlines()[-1]) < 0.05
