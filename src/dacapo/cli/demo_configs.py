"""The demo's two run configs: a Distance task (channel ``cell`` on ``fg``) and an
Affinities task with LSDs (on ``labels``), each a small anisotropic 3D UNet trained on CPU
(`dacapo.cli.demo_data` makes the data they read)."""

from __future__ import annotations

import os
from pathlib import Path

from dacapo.experiments.architectures import CNNectomeUNetConfig
from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig
from dacapo.experiments.run_config import RunConfig
from dacapo.experiments.tasks import AffinitiesTaskConfig, DistanceTaskConfig
from dacapo.experiments.trainer_config import TrainerConfig

#: iterations of the two demo runs (distance, affinities); ``--quick``: a few only
ITERATIONS = {"demo_distance": 150, "demo_affinities": 400}
QUICK_ITERATIONS = 4
#: validations during training
VALIDATIONS = {"demo_distance": 2, "demo_affinities": 4}


def demo_unet(name: str, input_shape=(12, 64, 64), eval_shape_increase=(8, 32, 32),
              num_fmaps: int = 8) -> CNNectomeUNetConfig:
    """The demo's small anisotropic 3D UNet: 3D convolutions only at the coarse level (the
    voxels are twice as long in z), ``num_fmaps`` feature maps out. With the defaults,
    input (12, 64, 64) -> output (8, 48, 48) voxels."""
    return CNNectomeUNetConfig(
        name=name,
        input_shape=tuple(input_shape),
        eval_shape_increase=tuple(eval_shape_increase),
        fmaps_in=1,
        fmaps_out=num_fmaps,
        num_fmaps=num_fmaps,
        fmap_inc_factor=2,
        downsample_factors=[(1, 2, 2)],
        kernel_size_down=[[(1, 3, 3), (1, 3, 3)], [(3, 3, 3), (3, 3, 3)]],
        kernel_size_up=[[(1, 3, 3), (1, 3, 3)]],
        padding="valid",
    )


def demo_run_configs(root: str | Path, quick: bool = False,
                     iterations: dict[str, int] | None = None) -> list:
    """The demo's two run configs (Distance, Affinities + LSDs) on the demo data."""

    data = Path(root).absolute() / "data" / "demo.zarr"
    iterations = {**ITERATIONS, **(iterations or {})}

    def split(gt: str) -> DataSplitConfig:
        return DataSplitConfig(
            train=[DatasetConfig("train", f"{data}/train/raw", f"{data}/train/{gt}")],
            validate=[DatasetConfig("validate", f"{data}/validate/raw", f"{data}/validate/{gt}")],
        )

    def schedule(name: str) -> dict:
        # validate a few times: apply takes the best checkpoint, not just the last
        n = QUICK_ITERATIONS if quick else iterations[name]
        k = VALIDATIONS[name]
        return {"num_iterations": n, "validation_interval": max(1, n // k),
                "checkpoint_interval": max(1, n // k), "snapshot_interval": n,
                "num_workers": 0}

    # --quick: batches in this process (no worker start-up for a handful of iterations).
    # The demo's model is so small that preparing a batch costs more than a step: the
    # training process leaves the data worker a core of its own.
    workers = 0 if quick else 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    trainer = TrainerConfig(batch_size=2, learning_rate=5e-3, num_data_workers=workers,
                            torch_threads=max(1, (cores or 1) - workers))
    distance = RunConfig(
        name="demo_distance",
        task_config=DistanceTaskConfig(
            "distance", channels=["cell"], clip_distance=80, tol_distance=40, scale_factor=50
        ),
        architecture_config=demo_unet("unet_distance"),
        datasplit_config=split("fg"),
        trainer_config=trainer,
        **schedule("demo_distance"),
    )
    affinities = RunConfig(
        name="demo_affinities",
        task_config=AffinitiesTaskConfig(
            "affinities",
            neighborhood=[(1, 0, 0), (0, 1, 0), (0, 0, 1), (2, 0, 0), (0, 4, 0), (0, 0, 4)],
            lsds=True,
            num_lsd_voxels=3,
            downsample_lsds=2,
        ),
        architecture_config=demo_unet("unet_affinities"),
        datasplit_config=split("labels"),
        trainer_config=trainer,
        **schedule("demo_affinities"),
    )
    return [distance, affinities]
