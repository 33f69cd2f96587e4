"""The planner's cost model against measured training steps.

For UNets of the shapes `dacapo plan` picks on ../shared/data (3D with one or two pooling
levels, 2D with three), one training step — forward, backward and Adam, batch 2, one torch
thread, as the trainer runs it — is timed (median of 5 after a warm-up) and set beside the
cost model's estimate (`dacapo.planning.rules.COST_PER_GMAC` / `COST_PER_GMAC_2D`; the
network part only: target preparation is in the data worker). Ratios above 1 mean the
model under-estimates and a planned run would overrun its budget.

``--data [DATASET ...]``: the data worker's CPU per batch on the crops the planner picks
for the real volumes, against `dacapo.planning.rules.DATA_COST_PER_INPUT_VOXEL` (the step
takes the longer of network and data).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_plan_cost.py [CASE ...]`` or
``... bench_plan_cost.py --data [DATASET ...]``.
"""

from __future__ import annotations

import os
import sys
import time

import torch
from _harness import repeat

from dacapo.experiments.architectures import CNNectomeUNetConfig
from dacapo.ops.planning import unet_shapes
from dacapo.planning.rules import COST_PER_GMAC, COST_PER_GMAC_2D, DATA_COST_PER_INPUT_VOXEL


def net(shape, factors, kd, ku, fmaps):
    cfg = CNNectomeUNetConfig(name="u", input_shape=shape, fmaps_in=1, fmaps_out=fmaps, num_fmaps=fmaps,
        fmap_inc_factor=2, downsample_factors=factors, kernel_size_down=kd, kernel_size_up=ku, padding="valid")
    return cfg.module()


k3 = [(3, 3, 3)] * 2
k2 = [(1, 3, 3)] * 2
CASES = {
 "3d2_30x96": ((30,96,96), [(1,2,2),(2,2,2)], [k2,k3,k3], [k2,k3], 12),
 "3d2_38x100": ((38,100,100), [(1,2,2),(2,2,2)], [k2,k3,k3], [k2,k3], 12),
 "3d2_46x100": ((46,100,100), [(1,2,2),(2,2,2)], [k2,k3,k3], [k2,k3], 12),
 "3d1_34x52": ((34,52,52), [(2,2,2)], [k3,k3], [k3], 12),
 "3d1_50x80": ((50,80,80), [(2,2,2)], [k3,k3], [k3], 12),
 "2d3_300": ((1,300,300), [(1,2,2)]*3, [k2]*4, [k2]*3, 24),
 "2d3_404": ((1,404,404), [(1,2,2)]*3, [k2]*4, [k2]*3, 24),
}


def data_cost(names: list[str]) -> None:
    """CPU seconds of the data worker per batch of 2 on the crops `dacapo plan` picks for
    the real volumes (20-minute plans), against `DATA_COST_PER_INPUT_VOXEL`."""
    from pathlib import Path

    import numpy as np
    import quality
    import quality_organelles

    from dacapo.training.batches import BatchProvider

    print(f"| dataset | task | input | data CPU per batch (s) | µs per input voxel | model (µs) |"
          f"  (load {os.getloadavg()[0]:.1f})")
    print("|---|---|---|---|---|---|")
    work = Path(quality.ROOT) / "quality_runs"
    for name in names:
        if name == "sstem_organelles":
            paths = quality_organelles.prepare(Path(quality.DEFAULT_DATA), work)
            rc = quality_organelles.planned("full", paths, 20, 0)
        else:
            paths = quality.prepare_data(name, Path(quality.DEFAULT_DATA), work)
            rc = quality.planned_config(name, paths, 20, 0)
        provider = BatchProvider(rc)
        provider[0]
        t = time.process_time()
        for i in range(1, 9):
            provider[i]
        cpu = (time.process_time() - t) / 8
        shape = tuple(rc.architecture_config.input_shape)
        kind = quality.DATASETS.get(name, {}).get("task", "one_hot")
        per = cpu / 2 / float(np.prod(shape)) * 1e6
        print(f"| {name} | {kind} | {shape} | {cpu:.3f} | {per:.2f} | "
              f"{DATA_COST_PER_INPUT_VOXEL[kind] * 1e6:.2f} |", flush=True)


def main() -> None:
    torch.set_num_threads(1)
    if sys.argv[1:2] == ["--data"]:
        data_cost(sys.argv[2:] or [*quality_datasets(), "sstem_organelles"])
        return
    print(f"| case | input | GMAC | measured step (s) | cost model (s) | measured / model |"
          f"  (load {os.getloadavg()[0]:.1f})")
    print("|---|---|---|---|---|---|")
    for name in sys.argv[1:] or CASES:
        step_time(name, *CASES[name])


def step_time(name, shape, f, kd, ku, fm) -> None:
    out, macs = unet_shapes(shape, f, kd, ku, fm)
    m = net(shape, f, kd, ku, fm)
    head = torch.nn.Conv3d(fm, 2, 1)
    opt = torch.optim.Adam(list(m.parameters()) + list(head.parameters()), 1e-3)
    x = torch.randn(2, 1, *shape)

    def step() -> None:
        loss = (head(m(x)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    st = repeat(step, 5, warmup=1).median
    model = 2 * (COST_PER_GMAC_2D if shape[0] == 1 else COST_PER_GMAC) * macs / 1e9
    print(f"| {name} | {shape} → {out} | {macs / 1e9:.2f} | {st:.3f} | {model:.3f} | "
          f"{st / model:.2f} |", flush=True)


def quality_datasets() -> list[str]:
    import quality

    return list(quality.DATASETS)


if __name__ == "__main__":
    main()
