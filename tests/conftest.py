"""Fixtures shared by several test folders: the tiny synthetic data (the demo's cells, small),
a tiny UNet and a tiny Distance run on that data, a zarr writer, and the ``dacapo`` command in a
fresh process. Each is a session-wide factory (a fixture that returns a function), so that
module-scoped fixtures can use it too. Thread counts are pinned for the shared test machine."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import attr
import numpy as np
import pytest
import torch
from funlib.geometry import Coordinate
from funlib.persistence import prepare_ds

from dacapo.cli.demo_configs import demo_unet
from dacapo.cli.demo_data import make_demo_data
from dacapo.experiments.architectures import CNNectomeUNetConfig
from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig
from dacapo.experiments.run_config import RunConfig
from dacapo.experiments.tasks import DistanceTaskConfig
from dacapo.experiments.trainer_config import TrainerConfig

#: marks an ``OMP_NUM_THREADS`` this file set (an xdist worker inherits its controller's)
_OURS = "DACAPO_TESTS_SET_OMP_NUM_THREADS"
if os.environ.get("OMP_NUM_THREADS") and not os.environ.get(_OURS):
    #: the caller's ``OMP_NUM_THREADS``, for this process and the ones its tests start
    THREADS = int(os.environ["OMP_NUM_THREADS"])
else:
    #: 2, or 1 under pytest-xdist (`make test` runs 2 workers on 2 cores; more threads than
    #: free cores make OpenMP spin); the processes a test starts get the same
    THREADS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else 2
    os.environ["OMP_NUM_THREADS"] = str(THREADS)
    os.environ[_OURS] = "1"
torch.set_num_threads(THREADS)
# `dacapo plan`'s step timings (`dacapo.planning.step_timer`): a folder of this test session,
# not the user's cache; removed at exit by the process that made it (xdist's workers inherit it)
if not os.environ.get("DACAPO_CACHE_DIR"):
    os.environ["DACAPO_CACHE_DIR"] = tempfile.mkdtemp(prefix="dacapo-tests-cache-")
    atexit.register(shutil.rmtree, os.environ["DACAPO_CACHE_DIR"], ignore_errors=True)

SHAPE = (16, 48, 48)


def _tiny_data(root: Path) -> Path:
    return make_demo_data(root, train_shape=SHAPE, validate_shape=SHAPE)


def _tiny_unet(name: str = "tiny", batch_norm: bool = False) -> CNNectomeUNetConfig:
    unet = demo_unet(name, input_shape=(8, 28, 28), eval_shape_increase=(0, 8, 8), num_fmaps=4)
    return attr.evolve(unet, batch_norm=batch_norm)


def _tiny_run(container: Path, name: str = "tiny", **kwargs) -> RunConfig:
    split = DataSplitConfig(
        train=[DatasetConfig("train", f"{container}/train/raw", f"{container}/train/fg")],
        validate=[DatasetConfig("validate", f"{container}/validate/raw",
                                f"{container}/validate/fg")],
    )
    defaults = dict(
        name=name,
        task_config=DistanceTaskConfig("distance", channels=["cell"], clip_distance=40,
                                       tol_distance=16, scale_factor=20),
        architecture_config=_tiny_unet(),
        datasplit_config=split,
        trainer_config=TrainerConfig(batch_size=1, learning_rate=1e-3, num_data_workers=0),
        num_iterations=6,
        validation_interval=0,
        checkpoint_interval=3,
        seed=3,
    )
    defaults.update(kwargs)
    return RunConfig(**defaults)


def _write_array(path: Path | str, data: np.ndarray, voxel_size, offset=None) -> None:
    dims = len(voxel_size)
    ds = prepare_ds(
        str(path), shape=data.shape, offset=Coordinate(offset or (0,) * dims),
        voxel_size=Coordinate(voxel_size), axis_names=["z", "y", "x"][-dims:],
        units=["nm"] * dims, dtype=data.dtype, mode="w",
    )
    ds[ds.roi] = data


def _dacapo_cli(*args: str, cwd: Path | None = None, timeout: float = 300,
                **popen) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "dacapo.cli", *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=timeout, **popen,
    )


@pytest.fixture(scope="session")
def tiny_data() -> Callable[[Path], Path]:
    """``tiny_data(root)``: the demo's synthetic cells, small, written to
    ``<root>/data/demo.zarr/{train,validate}/...``; returns the container."""
    return _tiny_data


@pytest.fixture(scope="session")
def tiny_unet() -> Callable[..., CNNectomeUNetConfig]:
    """``tiny_unet(name="tiny", batch_norm=False)``: the demo's UNet, smaller: input
    (8, 28, 28) -> output (4, 12, 12); eval (8, 36, 36)."""
    return _tiny_unet


@pytest.fixture(scope="session")
def tiny_run() -> Callable[..., RunConfig]:
    """``tiny_run(container, name="tiny", **overrides)``: a Distance run of the tiny UNet on
    the tiny data (6 iterations, checkpoints every 3, no validation)."""
    return _tiny_run


@pytest.fixture(scope="session")
def write_array() -> Callable[..., None]:
    """``write_array(path, data, voxel_size, offset=None)``: a zarr array with funlib
    metadata (spatial axes only)."""
    return _write_array


@pytest.fixture(scope="session")
def dacapo_cli() -> Callable[..., subprocess.CompletedProcess]:
    """``dacapo_cli(*args, cwd=None, timeout=300)``: run ``python -m dacapo.cli ARGS`` (the
    ``dacapo`` command) in a fresh process and capture its output."""
    return _dacapo_cli


@pytest.fixture
def log_records(request) -> Callable[[str], list[logging.LogRecord]]:
    """``log_records(name)``: the list the records of logger ``name`` go to from now on,
    straight from that logger, whatever an earlier test of this process did to logging
    (the CLI's handlers, propagation, levels, ``logging.disable``); restored after."""

    def attach(name: str) -> list[logging.LogRecord]:
        records: list[logging.LogRecord] = []
        keep = logging.Handler(logging.INFO)
        keep.emit = records.append
        log = logging.getLogger(name)
        old = (log.level, log.disabled, logging.root.manager.disable)
        log.addHandler(keep)
        log.setLevel(logging.INFO)
        log.disabled = False
        logging.disable(logging.NOTSET)
        request.addfinalizer(lambda: (log.removeHandler(keep), log.setLevel(old[0]),
                                      setattr(log, "disabled", old[1]),
                                      logging.disable(old[2])))
        return records

    return attach


#: folders whose files run first. Under ``-n 2 --dist loadfile`` (``make test``) xdist hands
#: out whole files in collection order, so a long file collected last keeps one worker busy
#: while the other idles; the long end-to-end files (kills, schedulers, training) go first
#: and the many short ones fill the end.
_FIRST = ("system", "training", "pipeline", "cli", "segment")


def pytest_collection_modifyitems(config, items) -> None:
    here = Path(__file__).parent

    def rank(item) -> int:
        try:
            top = item.path.relative_to(here).parts[0]
        except ValueError:
            return len(_FIRST)
        return _FIRST.index(top) if top in _FIRST else len(_FIRST)

    items.sort(key=rank)  # stable: the order within a folder is kept
