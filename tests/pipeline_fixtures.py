"""Helpers of the pipeline tests: tiny synthetic data and a tiny run config."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import attr
import numpy as np
from funlib.geometry import Coordinate
from funlib.persistence import prepare_ds

from dacapo.cli.demo_configs import demo_unet
from dacapo.cli.demo_data import make_demo_data
from dacapo.experiments.architectures import CNNectomeUNetConfig
from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig
from dacapo.experiments.run_config import RunConfig
from dacapo.experiments.tasks import DistanceTaskConfig
from dacapo.experiments.trainer_config import TrainerConfig

SHAPE = (16, 48, 48)


def tiny_data(root: Path) -> Path:
    """The demo's synthetic cells, small: ``<root>/data/demo.zarr/{train,validate}/...``."""
    return make_demo_data(root, train_shape=SHAPE, validate_shape=SHAPE)


def tiny_unet(name: str = "tiny", batch_norm: bool = False) -> CNNectomeUNetConfig:
    """The demo's UNet, smaller: input (8, 28, 28) -> output (4, 12, 12); eval (8, 36, 36)."""
    unet = demo_unet(name, input_shape=(8, 28, 28), eval_shape_increase=(0, 8, 8), num_fmaps=4)
    return attr.evolve(unet, batch_norm=batch_norm)


def randomise_batch_norm(model, seed: int = 0) -> None:
    """Running statistics and affine parameters of every batch norm of ``model`` set to
    random values (fresh ones are the identity, which would hide a wrong eval mode)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)


def tiny_run(container: Path, name: str = "tiny", **kwargs) -> RunConfig:
    """A Distance run on the tiny data (overrides as keyword arguments)."""
    split = DataSplitConfig(
        train=[DatasetConfig("train", f"{container}/train/raw", f"{container}/train/fg")],
        validate=[DatasetConfig("validate", f"{container}/validate/raw",
                                f"{container}/validate/fg")],
    )
    defaults = dict(
        name=name,
        task_config=DistanceTaskConfig("distance", channels=["cell"], clip_distance=40,
                                       tol_distance=16, scale_factor=20),
        architecture_config=tiny_unet(),
        datasplit_config=split,
        trainer_config=TrainerConfig(batch_size=1, learning_rate=1e-3, num_data_workers=0),
        num_iterations=6,
        validation_interval=0,
        checkpoint_interval=3,
        seed=3,
    )
    defaults.update(kwargs)
    return RunConfig(**defaults)


def write_array(path: Path | str, data: np.ndarray, voxel_size, offset=None) -> None:
    """A zarr array with funlib metadata (spatial axes only)."""
    dims = len(voxel_size)
    ds = prepare_ds(
        str(path), shape=data.shape, offset=Coordinate(offset or (0,) * dims),
        voxel_size=Coordinate(voxel_size), axis_names=["z", "y", "x"][-dims:],
        units=["nm"] * dims, dtype=data.dtype, mode="w",
    )
    ds[ds.roi] = data


def dacapo_cli(*args: str, cwd: Path | None = None, timeout: float = 300,
               **popen) -> subprocess.CompletedProcess:
    """Run ``python -m dacapo.cli ARGS`` (the ``dacapo`` command) and capture its output."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "dacapo.cli", *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=timeout, **popen,
    )


def wait_past_checkpoint(proc: subprocess.Popen, run_dir, interval: int, timeout: float) -> None:
    """Poll ``run_dir``'s training stats until the run is at least two iterations past a
    checkpoint (every ``interval``) after the first one, so that a kill then loses work."""
    deadline = time.monotonic() + timeout
    while True:
        rows = run_dir.training_stats()
        last = int(rows[-1]["iteration"]) if rows else 0
        if last >= interval + 2 and last % interval >= 2:
            return
        assert proc.poll() is None, f"training ended early: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "training did not get going"
        time.sleep(0.01)
