"""Training step time in fp32 vs bf16 (autocast) on this machine's device.

The model: the valid 3D UNet of bench_predict (12 feature maps, one (2, 2, 2)
downsampling) of an Affinities + LSD task (19 output channels), training input 44³ →
output 28³, batch 2 of random tensors (speed does not depend on the data); each step is
`dacapo.training.loop.train_step` (forward under autocast, fp32 loss, backward, Adam step).
Prints the median step time of ``--repeats`` steps after a warm-up for each precision,
the ratio fp32 / bf16 (> 1: bf16 faster), and the machine load. On a CPU without native
bf16 matrix units (no AMX / AVX512-BF16) bf16 is usually *slower*: the convolutions are
converted, not accelerated; on a GPU with tensor cores (A100, H100) bf16 is typically
1.5–3× faster and halves the activation memory.

Run: ``.venv/bin/python benchmarks/bench_precision.py [--repeats 10]``.
"""

from __future__ import annotations

import argparse
import os
import statistics

import torch
from _harness import repeat

NEIGHBORHOOD = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (3, 0, 0), (0, 3, 0), (0, 0, 3),
                (9, 0, 0), (0, 9, 0), (0, 0, 9)]


def step_times(precision: str, repeats: int, device: torch.device) -> list[float]:
    from dacapo.experiments.architectures import CNNectomeUNetConfig
    from dacapo.experiments.tasks import AffinitiesTaskConfig
    from dacapo.training.loop import train_step
    from dacapo.training.optimiser import make_scaler

    arch = CNNectomeUNetConfig(
        name="unet", input_shape=(44, 44, 44), fmaps_in=1, fmaps_out=12, num_fmaps=12,
        fmap_inc_factor=2, downsample_factors=[(2, 2, 2)],
        kernel_size_down=[[(3, 3, 3)] * 2] * 2, kernel_size_up=[[(3, 3, 3)] * 2],
        padding="valid")
    task = AffinitiesTaskConfig("affs", neighborhood=NEIGHBORHOOD, lsds=True).build()
    torch.manual_seed(0)
    model = task.create_model(arch).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = make_scaler(precision, device)
    raw = torch.rand(2, 1, 44, 44, 44, device=device)
    with torch.no_grad():
        shape = model(raw).shape
    target, weight = torch.rand(shape, device=device), torch.ones(shape, device=device)

    def step() -> None:
        train_step(model, optimizer, task.loss, raw, target, weight, precision, scaler)
        if device.type == "cuda":
            torch.cuda.synchronize()  # the step's kernels inside its time

    if device.type == "cuda":
        torch.cuda.synchronize()
    return repeat(step, repeats, warmup=2).wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precisions = ["fp32", "bf16"] + (["fp16"] if device.type == "cuda" else [])
    print(f"# device {device}, {torch.get_num_threads()} threads")
    medians = {}
    for precision in precisions:
        times = step_times(precision, args.repeats, device)
        medians[precision] = statistics.median(times)
        print(f"{precision}: {medians[precision] * 1000:.0f} ms/step (median of {len(times)}, "
              f"load {os.getloadavg()[0]:.1f})", flush=True)
    for precision in precisions[1:]:
        print(f"fp32 / {precision}: {medians['fp32'] / medians[precision]:.2f} "
              "(> 1: the low precision is faster)")


if __name__ == "__main__":
    main()
