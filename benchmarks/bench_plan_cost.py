"""The planner's cost model against measured training steps.

For UNets of the shapes `dacapo plan` picks on ../shared/data (3D with one or two pooling
levels, 2D with three), one training step — forward, backward and Adam, batch 2, one torch
thread, as the trainer runs it — is timed (median of 5 after a warm-up) and set beside the
cost model's estimate (`dacapo.planning.rules.COST_PER_GMAC` / `COST_PER_GMAC_2D`; the
network part only: target preparation is in the data worker). Ratios above 1 mean the
model under-estimates and a planned run would overrun its budget.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_plan_cost.py [CASE ...]``.
"""

from __future__ import annotations

import os
import sys

import torch
from _harness import repeat

from dacapo.experiments.architectures import CNNectomeUNetConfig
from dacapo.ops.planning import unet_shapes
from dacapo.planning.rules import COST_PER_GMAC, COST_PER_GMAC_2D


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


def main() -> None:
    torch.set_num_threads(1)
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


if __name__ == "__main__":
    main()
