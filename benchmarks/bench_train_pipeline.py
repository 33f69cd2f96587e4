"""Training step time with the real data pipeline vs the bare model step.

For each demo run (Distance; Affinities + LSDs: the batch preparation is heavier), on the
demo's synthetic data, with the demo's tiny UNet (8 feature maps; its config leaves the data
worker a core) and with a larger one (24 feature maps, bigger crops, torch's default
threads), each trained with one background data worker:

- *bare*: ``train_step`` on batches made beforehand (tensors in memory): model forward,
  loss, backward, optimiser step and nothing else;
- *pipeline*: `dacapo.training.loop.train_run` as ``dacapo train`` runs it (batches from random
  crops + augmentation + targets/weights in ``num_data_workers`` background process(es),
  one CSV row per iteration), timed from its ``training_stats.csv`` over the iterations after
  a warm-up (so the worker start-up, reported separately, is left out).

Prints both per-iteration times, output Mvoxel/s and the ratio pipeline / bare (goal:
<= 1.10, i.e. the data pipeline adds at most 10 %). On a machine whose cores are busy
with other work, both times grow and the ratio is noisy; rerun when idle.

Run: ``.venv/bin/python benchmarks/bench_train_pipeline.py [--iterations N]``.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import attr
import torch
from _harness import timed


def bare_step_time(rc, batches: list[dict], repeats: int) -> float:
    from dacapo.runs.model_builder import build_model
    from dacapo.training.loop import train_step
    from dacapo.training.optimiser import make_optimizer

    task = rc.task_config.build()
    model = build_model(rc, task)
    optimizer = make_optimizer(model, rc.trainer_config)
    tensors = [{k: torch.from_numpy(b[k]) for k in ("raw", "target", "weight")} for b in batches]

    def steps(some: list[dict]) -> None:
        for t in some:
            train_step(model, optimizer, task.loss, t["raw"], t["target"], t["weight"])

    steps(tensors[:2])  # warm-up
    seconds, _ = timed(steps, [tensors[i % len(tensors)] for i in range(repeats)])
    return seconds / repeats  # back to back, as in training: the mean


def pipeline_step_time(rc, root: Path, warmup: int, iterations: int) -> tuple[float, float]:
    """(seconds per iteration after the warm-up, seconds to the first iteration)."""
    from dacapo.training.loop import train_run

    rc = attr.evolve(rc, num_iterations=warmup + iterations, validation_interval=0,
                     checkpoint_interval=warmup + iterations, snapshot_interval=0)
    run_dir = train_run(rc, root, progress=False)
    stats = run_dir.training_stats()
    times = {int(s["iteration"]): s["time"] for s in stats}
    return (times[warmup + iterations] - times[warmup]) / iterations, times[1]


def make_batches(provider, indices) -> list[dict]:
    """The provider's batches at ``indices``, made in this process."""
    return [provider[i] for i in indices]


def larger(rc):
    """``rc`` with a model ~10x as expensive per step (input (16, 108, 108) -> output
    (12, 92, 92), 24 feature maps) and torch's default threads."""
    arch = attr.evolve(rc.architecture_config, input_shape=(16, 108, 108), num_fmaps=24,
                       fmaps_out=24)
    return attr.evolve(rc, name=rc.name + "_larger", architecture_config=arch,
                       trainer_config=attr.evolve(rc.trainer_config, torch_threads=0))


def main() -> None:
    from dacapo.cli.demo_configs import demo_run_configs
    from dacapo.cli.demo_data import make_demo_data
    from dacapo.pipeline.model_geometry import ModelGeometry
    from dacapo.runs.model_builder import build_model
    from dacapo.training.batches import BatchProvider

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    print(f"torch threads {torch.get_num_threads()}, {args.iterations} timed iterations")
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        root = Path(tmp)
        make_demo_data(root)
        for rc in [*demo_run_configs(root), *map(larger, demo_run_configs(root))]:
            provider = BatchProvider(rc)
            batches = [provider[i] for i in range(8)]
            bare = bare_step_time(rc, batches, args.iterations)
            pipe, first = pipeline_step_time(rc, root, args.warmup, args.iterations)
            model = build_model(rc)
            geo = ModelGeometry(model, provider._setup()["datasets"][0].raw.voxel_size)
            voxels = rc.trainer_config.batch_size * math.prod(geo.output_shape)
            batch_time = timed(make_batches, provider, range(100, 103))[0] / 3
            print(
                f"{rc.name:23s} bare step {bare * 1e3:7.1f} ms ({voxels / bare / 1e6:.2f} Mvoxel/s)"
                f" | pipeline {pipe * 1e3:7.1f} ms ({voxels / pipe / 1e6:.2f} Mvoxel/s)"
                f" | ratio {pipe / bare:.3f} (goal <= 1.10)"
                f" | one batch made alone {batch_time * 1e3:.0f} ms,"
                f" {rc.trainer_config.num_data_workers} data worker(s), first iteration after"
                f" {first:.1f} s"
            )


if __name__ == "__main__":
    main()
