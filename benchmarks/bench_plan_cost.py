"""The planner's cost model against measured training steps.

For UNets of the shapes `dacapo plan` picks on our real volumes (3D with one or two pooling
levels, 2D with three), one training step — forward, backward and Adam, batch 2, one torch
thread, as the trainer runs it — is timed (median of 5 after a warm-up) and set beside the
cost model's estimate (`dacapo.planning.cost_model.COST_PER_GMAC` / `COST_PER_GMAC_2D`; the
network part only: target preparation is in the data worker). Ratios above 1 mean the
model under-estimates and a planned run would overrun its budget.

``--data [DATASET ...]``: the data worker's CPU per sample on the crops the planner picks
for the real volumes at a 2- and a 20-minute budget (small and large inputs), against
`dacapo.planning.cost_model.data_seconds` (a cost per input voxel plus one per GT-region voxel; the
step adds the network's threaded cost and the data).

``--budget MINUTES [DATASET ...]``: trains the plan of MINUTES for each real volume and
sets the wall time beside the budget (an idle machine; all threads, as `dacapo train`).

``--layout [DATASET ...]``: bare training steps (batch 2, one torch thread) of the 20-minute
plan's UNet for each real volume in fp32 and bf16 (autocast), default and channels-last
layout (`dacapo.pipeline.precision`), against fp32 in the default layout
(`dacapo.planning.cost_model.BF16_FACTOR`).

``--threads-ratio [CASE ...]``: bare steps with all torch threads against one
(`dacapo.planning.cost_model.NETWORK_THREADS_FACTOR`).

``--steps MINUTES N [DATASET ...]``: the plan of MINUTES, trained for N steps only (all
threads, as `dacapo train`) and validated once: its wall time per step (after a warm-up of
N/5 steps, from ``training_stats.csv``) and per validation against the cost model's step
and validation estimates, and the wall time the full plan would take at those costs
(a projection, not a 20-minute run; an idle machine). ``--threads T``: the steps with
``torch_threads = T`` instead of the plan's.

The real volumes are those of `_harness.data_dir` (``$DACAPO_DATA``, else ``../shared/data``),
read and converted as the quality benchmarks do (`quality.prepare_data`,
`quality_organelles.prepare`, `quality_modalities.prepare_2d`) into their work folder
(`_harness.work_dir`: ``quality_runs`` for ours); a bad data folder is one line, exit 2.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_plan_cost.py [CASE ...]``,
``... bench_plan_cost.py --data [DATASET ...]`` or ``.venv/bin/python
benchmarks/bench_plan_cost.py --budget 2 [DATASET ...]``.
"""

from __future__ import annotations

import os
import sys
import time

import torch
from _data import DataError
from _harness import repeat, work_dir

from dacapo.experiments.architectures import CNNectomeUNetConfig
from dacapo.ops.planning import unet_shapes
from dacapo.planning.cost_model import network_costs


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


def planned(name: str, minutes: float):
    """The run config `dacapo plan` makes for ``minutes`` on a real dataset, and its kind."""
    from pathlib import Path

    import quality
    import quality_organelles

    from dacapo.training.step_timer import measure_step

    data = Path(quality.DEFAULT_DATA)
    work = work_dir(data)
    if name == "sstem_organelles":
        paths = quality_organelles.prepare(data, work)
        return quality_organelles.planned("full", paths, minutes, 0, measure=measure_step), "one_hot"
    if name == "lm_nuclei_2d":
        import quality_modalities

        from dacapo.planning.collection_plan import plan_collection

        container = quality_modalities.prepare_2d(data, work)
        rc, _ = plan_collection(str(container), "inner_distance", minutes=minutes,
                                name="cost_lm_nuclei_2d", seed=0, channel="nucleus",
                                measure=measure_step)
        return rc, "inner_distance"
    if name not in quality.DATASETS:
        raise DataError(data / name, "not a dataset of the quality benchmarks ("
                        + ", ".join(all_datasets()) + ")")
    paths = quality.prepare_data(name, data, work)
    return quality.planned_config(name, paths, minutes, 0), quality.DATASETS[name]["task"]


def data_cost(names: list[str], budgets=(2.0, 20.0)) -> None:
    """CPU seconds of the data worker per sample on the crops `dacapo plan` picks for the
    real volumes at two budgets (small and large inputs), against the model
    `DATA_COST_PER_SAMPLE` + `DATA_COST_PER_INPUT_VOXEL` × input voxels."""
    import numpy as np

    from dacapo.planning.cost_model import data_seconds
    from dacapo.training.batches import BatchProvider

    print(f"| dataset | task | minutes | input (voxels) | output + 2 x target padding "
          f"(voxels) | data CPU per sample (s) | model (s) | measured / model |  "
          f"(load {os.getloadavg()[0]:.1f})")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        for minutes in budgets:
            rc, kind = planned(name, minutes)
            provider = BatchProvider(rc)
            provider[0]
            t = time.process_time()
            for i in range(1, 9):
                provider[i]
            batch = rc.trainer_config.batch_size
            cpu = (time.process_time() - t) / 8 / batch
            shape = tuple(rc.architecture_config.input_shape)
            out, pad = output_and_padding(rc)
            model = data_seconds(kind, shape, out, pad, 1)
            region = np.prod([o + 2 * p for o, p in zip(out, pad)])
            print(f"| {name} | {kind} | {minutes:g} | {shape} ({np.prod(shape):.0f}) | "
                  f"{out} + 2 x {pad} ({region:.0f}) | {cpu:.4f} | {model:.4f} | "
                  f"{cpu / model:.2f} |", flush=True)


def output_and_padding(rc) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The model's output shape and the task's target padding (voxels, the GT's grid)."""
    from funlib.geometry import Coordinate

    from dacapo.io.arrays import open_array
    from dacapo.pipeline.model_geometry import ModelGeometry
    from dacapo.runs.model_builder import build_model

    raw = open_array(rc.datasplit_config.train[0].raw, "raw")
    task = rc.task_config.build()
    geometry = ModelGeometry(build_model(rc, task), raw.voxel_size)
    vs = geometry.output_voxel_size
    pad = task.predictor.padding(vs) / vs
    out = tuple(int(o) for o in geometry.output_shape)
    pad = tuple(int(p) for p in Coordinate(pad))
    if len(out) == 3 and out[0] == 1:  # a network of sections: one output section
        pad = (0,) + pad[1:]
    return out, pad


def fresh_run(rc, prefix: str, name: str, minutes: float, work, **changes):
    """``rc`` as run ``<prefix>_<name>_<minutes>`` (with ``changes``), its folder in
    ``work`` removed."""
    import shutil

    import attr

    rc = attr.evolve(rc, name=f"{prefix}_{name}_{minutes:g}", **changes)
    shutil.rmtree(work / rc.name, ignore_errors=True)
    return rc


def budget_check(minutes: float, names: list[str]) -> None:
    """Train the plan of ``minutes`` for each real dataset (validations included, as
    planned) and set its wall time beside the budget: the cost model's end-to-end check.
    Run on an idle machine (the load is printed); the runs go to ``budget/`` in the work
    folder (``quality_runs/budget/`` for ours)."""
    import quality

    from dacapo.training.loop import train_run

    work = work_dir(quality.DEFAULT_DATA) / "budget"
    print("| dataset | task | input | iterations | wall s per iteration | wall (min) | "
          "budget (min) | wall / budget | load before, after |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        rc, kind = planned(name, minutes)
        rc = fresh_run(rc, "budget", name, minutes, work)
        load = os.getloadavg()[0]
        t = time.perf_counter()
        train_run(rc, work, progress=False)
        wall = (time.perf_counter() - t) / 60
        iterations = rc.num_iterations
        print(f"| {name} | {kind} | {tuple(rc.architecture_config.input_shape)} | {iterations} "
              f"| {wall * 60 / iterations:.3f} | {wall:.2f} | {minutes:g} | "
              f"{wall / minutes:.2f} | {load:.1f}, {os.getloadavg()[0]:.1f} |", flush=True)


def model_step(rc, kind: str) -> float:
    """The cost model's seconds per step for run config ``rc`` (`step_seconds`)."""
    from dacapo.ops.planning import unet_shapes as shapes
    from dacapo.planning.cost_model import step_seconds

    a = rc.architecture_config
    shape = tuple(a.input_shape)
    _, macs = shapes(shape, [tuple(f) for f in a.downsample_factors],
                     [[tuple(k) for k in ks] for ks in a.kernel_size_down],
                     [[tuple(k) for k in ks] for ks in a.kernel_size_up], a.num_fmaps,
                     pooling=tuple(a.input_pooling) if a.input_pooling else None)
    out, pad = output_and_padding(rc)
    # 2D, or a network of sections (one output section)
    gmac, voxel = network_costs(kind, len(shape) == 2 or (len(out) == 3 and out[0] == 1),
                                rc.trainer_config.precision, len(shape))
    return step_seconds(kind, macs, shape, out, gmac, voxel, rc.trainer_config.batch_size, pad,
                        split=rc.trainer_config.torch_threads != 0)


def steps_check(minutes: float, steps: int, names: list[str], threads: int = 0) -> None:
    """Train ``steps`` steps of the plan of ``minutes`` and validate once, for each real
    dataset: measured seconds per step and per validation against the cost model's, and
    the full plan's wall time projected from the measured costs. ``threads``: the trainer's
    ``torch_threads`` for the steps (0: the plan's)."""
    import csv
    from pathlib import Path

    import attr
    import quality

    from dacapo.experiments.tta import forward_passes
    from dacapo.pipeline.validate import validate_run
    from dacapo.planning.cost_model import RESERVE, validation_seconds
    from dacapo.planning.planner import predicted_voxels
    from dacapo.training.loop import train_run

    work = work_dir(quality.DEFAULT_DATA) / "steps"
    print("| dataset | task | input | plan: steps, validations | step s: measured / model | "
          "validation s: measured / model | projected wall / budget | load before, after |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        rc, kind = planned(name, minutes)
        short = fresh_run(rc, "steps", name, minutes, work, num_iterations=steps,
                          validation_interval=0, checkpoint_interval=steps)
        plan_steps = rc.num_iterations
        validations = plan_steps // rc.validation_interval if rc.validation_interval else 0
        if threads:
            short = attr.evolve(short, trainer_config=attr.evolve(short.trainer_config,
                                                                  torch_threads=threads))
        load = os.getloadavg()[0]
        run_dir = train_run(short, work, progress=False, validate=False)
        with open(Path(run_dir.path) / "training_stats.csv") as f:
            times = {int(r["iteration"]): float(r["time"]) for r in csv.DictReader(f)}
        warm = max(1, steps // 5)
        step = (times[steps] - times[warm]) / (steps - warm)
        t = time.perf_counter()
        validate_run(run_dir, steps)
        val = time.perf_counter() - t
        voxels = sum(predicted_voxels(d, getattr(rc.task_config, "classes", None))
                     for d in rc.datasplit_config.validate)
        sets = len(list(rc.task_config.build().post_processor.enumerate_parameters()))
        passes = forward_passes(rc.architecture_config.dims, rc.test_time_flips)
        val_model = validation_seconds(voxels, sets, passes)
        projected = (plan_steps * step + validations * val) / (1 - RESERVE) / 60
        print(f"| {name} | {kind} | {tuple(rc.architecture_config.input_shape)} | {plan_steps}, "
              f"{validations} | {step:.3f} / {model_step(rc, kind):.3f} | {val:.1f} / "
              f"{val_model:.1f} | {projected / minutes:.2f} | {load:.1f}, "
              f"{os.getloadavg()[0]:.1f} |", flush=True)


def main() -> None:
    if sys.argv[1:2] == ["--steps"]:
        threads = 0
        if "--threads" in sys.argv:
            at = sys.argv.index("--threads")
            threads = int(sys.argv[at + 1])
            del sys.argv[at:at + 2]
        names = sys.argv[4:] or all_datasets()
        steps_check(float(sys.argv[2]), int(sys.argv[3]), names, threads)
        return
    if sys.argv[1:2] == ["--budget"]:
        names = sys.argv[3:] or all_datasets()
        budget_check(float(sys.argv[2]), names)
        return
    if sys.argv[1:2] == ["--threads-ratio"]:
        threads_ratio(_known_cases(sys.argv[2:], {**CASES, **THREAD_CASES}) or THREAD_CASES)
        return
    torch.set_num_threads(1)
    if sys.argv[1:2] == ["--layout"]:
        layout(sys.argv[2:] or all_datasets())
        return
    if sys.argv[1:2] == ["--data"]:
        data_cost(sys.argv[2:] or all_datasets())
        return
    names = _known_cases(sys.argv[1:], CASES)
    print(f"| case | input | GMAC | measured step (s) | cost model (s) | measured / model |"
          f"  (load {os.getloadavg()[0]:.1f})")
    print("|---|---|---|---|---|---|")
    for name in names or CASES:
        step_time(name, *CASES[name])


def _known_cases(names: list[str], cases: dict) -> list[str]:
    """``names``, or one line naming an unknown case and exit 2."""
    unknown = [n for n in names if n not in cases]
    if unknown:
        print(f"bench_plan_cost: unknown case {unknown[0]!r} (cases: {', '.join(cases)})",
              file=sys.stderr)
        sys.exit(2)
    return names


def training_step(shape, f, kd, ku, fm):
    """(output shape, multiply-adds, a function running one bare training step of batch 2)
    for a UNet case."""
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

    return out, macs, step


def step_time(name, shape, f, kd, ku, fm) -> None:
    out, macs, step = training_step(shape, f, kd, ku, fm)
    st = repeat(step, 5, warmup=1).median
    gmac_cost, _ = network_costs("", two_d=shape[0] == 1)
    model = 2 * gmac_cost * macs / 1e9
    print(f"| {name} | {shape} → {out} | {macs / 1e9:.2f} | {st:.3f} | {model:.3f} | "
          f"{st / model:.2f} |", flush=True)


#: the UNets of the planned 3D (one level) and 2D (three levels) crops, small to large
THREAD_CASES = {
    "3d1_24": ((24, 24, 24), [(2, 2, 2)], [k3, k3], [k3], 12),
    "3d1_30": ((30, 30, 30), [(2, 2, 2)], [k3, k3], [k3], 12),
    "3d1_34x52": ((34, 52, 52), [(2, 2, 2)], [k3, k3], [k3], 12),
    "3d1_48x64": ((48, 64, 64), [(2, 2, 2)], [k3, k3], [k3], 12),
    "2d3_116": ((1, 116, 116), [(1, 2, 2)] * 3, [k2] * 4, [k2] * 3, 24),
    "2d3_204": ((1, 204, 204), [(1, 2, 2)] * 3, [k2] * 4, [k2] * 3, 24),
    "2d3_340": ((1, 340, 340), [(1, 2, 2)] * 3, [k2] * 4, [k2] * 3, 24),
}


def threads_ratio(names) -> None:
    """Bare training steps (batch 2) with all torch threads against one, on the same net in
    one process: `dacapo.planning.cost_model.NETWORK_THREADS_FACTOR`."""
    from dacapo.planning.cost_model import NETWORK_THREADS_FACTOR

    cases = {**CASES, **THREAD_CASES}
    threads = torch.get_num_threads()
    print(f"| case | input | GMAC | step s, 1 thread | step s, {threads} threads | ratio "
          f"(model {NETWORK_THREADS_FACTOR}) |  (load {os.getloadavg()[0]:.1f})")
    print("|---|---|---|---|---|---|")
    for name in names:
        shape = cases[name][0]
        _, macs, step = training_step(*cases[name])
        seconds = {}
        for t in (1, threads):
            torch.set_num_threads(t)
            seconds[t] = repeat(step, 7, warmup=2).median
        print(f"| {name} | {shape} | {macs / 1e9:.2f} | {seconds[1]:.3f} | "
              f"{seconds[threads]:.3f} | {seconds[threads] / seconds[1]:.2f} |", flush=True)


def _bare_step(model, x, precision: str):
    """One training step of ``model`` on ``x`` (forward in ``precision``, Adam), a function."""
    from dacapo.pipeline.precision import autocast

    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def step() -> None:
        opt.zero_grad()
        with autocast(precision, torch.device("cpu")):
            y = model(x)
        y.float().square().mean().backward()
        opt.step()

    return step


def layout(names: list[str]) -> None:
    """Bare training steps of the 20-minute plans' UNets in fp32 / bf16 and the default /
    channels-last layout, one thread, against fp32 in the default layout."""
    from dacapo.pipeline.precision import channels_last

    print(f"| dataset | input | fp32 (s) | fp32 channels-last | bf16 | bf16 channels-last |"
          f"  (ratios to fp32; load {os.getloadavg()[0]:.1f})")
    print("|---|---|---|---|---|---|")
    for name in names:
        rc, _ = planned(name, 20.0)
        arch = rc.architecture_config
        x = torch.randn(2, 1, *arch.input_shape)
        seconds = []
        for precision, last in (("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)):
            torch.manual_seed(0)
            model = arch.module()
            if last:
                model = channels_last(model, arch.dims)
            seconds.append(repeat(_bare_step(model, x, precision), 4, warmup=1).median)
        print(f"| {name} | {tuple(arch.input_shape)} | {seconds[0]:.3f} | "
              + " | ".join(f"{s / seconds[0]:.2f}" for s in seconds[1:]) + " |", flush=True)


def all_datasets() -> list[str]:
    """The six real volumes: `quality.DATASETS`, the organelles and the 2D nuclei."""
    import quality

    return [*quality.DATASETS, "sstem_organelles", "lm_nuclei_2d"]


if __name__ == "__main__":
    try:
        main()
    except DataError as e:  # a bad data folder: one line
        print(f"bench_plan_cost: {e}", file=sys.stderr)
        sys.exit(2)
