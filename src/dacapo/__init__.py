"""dacapo: segmentation tasks and a lean pipeline for large 2D/3D microscopy volumes."""

import os

__version__ = "0.1.0"

#: oneDNN (torch's CPU convolutions) capped below AMX: with torch 2.13.0+cpu, the AMX bf16
#: kernels of the backward convolution corrupt the heap (a segfault or "double free" in
#: training) on inputs of ~128² and larger, e.g. every planned sections network on a CPU
#: with AMX; AVX-512 BF16 computes bf16 in hardware all the same. Set before any
#: convolution runs (oneDNN reads it once); a value the user sets is kept.
#: (`tests/training/test_cpu_isa.py` trains such a step in a fresh process.)
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
