"""Inputs are never written: raw, GT and mask locked on disk through train, validate, apply.

The input container and every file and folder in it are made read-only (``chmod a-w``;
for root, which ignores modes, also ``chattr +i`` — immutable — when the file system
supports it). Training (with a data-loader worker process), validation and a 2-worker
blockwise apply then run on them; afterwards every file's bytes and mtime are unchanged.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from funlib.persistence import prepare_ds

from dacapo.cli.main import cli
from dacapo.experiments.architectures import DummyArchitectureConfig
from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig
from dacapo.experiments.run_config import RunConfig
from dacapo.experiments.tasks import DistanceTaskConfig
from dacapo.experiments.trainer_config import TrainerConfig
from dacapo.io.arrays import open_array
from dacapo.pipeline.predict_options import PredictOptions
from dacapo.pipeline.validate import validate_run
from dacapo.training.loop import train_run


def _write(path: Path, data: np.ndarray) -> str:
    arr = prepare_ds(str(path), data.shape, offset=(0, 0, 0), voxel_size=(8, 4, 4),
                     axis_names=["z", "y", "x"], dtype=data.dtype, chunk_shape=(8, 16, 16),
                     mode="w")
    arr[arr.roi] = data
    return str(path)


def _state(root: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted([root, *root.rglob("*")]):
        st = p.stat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
        out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns,
                                          digest)
    return out


def _lock(paths: list[Path]) -> bool:
    """Read-only on disk; also immutable for root. Returns whether chattr was used."""
    for p in paths:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    if os.geteuid() != 0 or not shutil.which("chattr"):
        return False
    res = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True)
    return res.returncode == 0


def _unlock(paths: list[Path], immutable: bool) -> None:
    if immutable:
        subprocess.run(["chattr", "-i", *map(str, paths)], capture_output=True)
    for p in paths:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


def test_train_validate_apply_never_write_their_inputs(tmp_path, monkeypatch):
    lab = np.zeros((16, 48, 48), np.uint8)
    lab[3:13, 6:30, 8:40] = 1
    raw = (lab * 140 + np.random.default_rng(0).integers(0, 80, lab.shape)).astype(np.uint8)
    container = tmp_path / "in.zarr"
    paths = {
        "raw": _write(container / "raw", raw),
        "gt": _write(container / "fg", lab),
        "mask": _write(container / "mask", np.ones_like(lab)),
    }
    ds = DatasetConfig("vol", paths["raw"], paths["gt"], paths["mask"])
    rc = RunConfig(
        "ro",
        DistanceTaskConfig("dist", channels=["fg"], clip_distance=40, tol_distance=16,
                           scale_factor=20),
        DummyArchitectureConfig("arch", num_in_channels=1, num_out_channels=1,
                                input_shape=(8, 24, 24)),
        DataSplitConfig([ds], [ds]),
        TrainerConfig(num_data_workers=1),
        num_iterations=2,
        validation_interval=2,
        checkpoint_interval=2,
    )
    before = _state(container)
    locked = [container, *container.rglob("*")]
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    immutable = _lock(locked)
    try:
        if os.geteuid() == 0 and immutable:  # the lock really holds, even for root
            try:
                (container / "raw" / "probe").touch()
                raise AssertionError("the lock does not hold")
            except PermissionError:
                pass
        run = train_run(rc, tmp_path / "runs", progress=False)  # validates at iteration 2
        assert run.latest_checkpoint() == 2
        rows = validate_run(run.path, 2, PredictOptions(progress=False))
        assert rows and all(r["iteration"] == 2 for r in rows)
        out = tmp_path / "out.zarr" / "seg"
        result = CliRunner().invoke(cli, ["apply", str(run.path), "--input", paths["raw"],
                                          "--output", str(out), "--workers", "2", "--quiet"])
        assert result.exit_code == 0, result.output + result.stderr
    finally:
        _unlock(locked, immutable)
    assert _state(container) == before
    seg = open_array(str(out))  # an OME-NGFF image: level s0
    assert seg.to_ndarray(seg.roi).any()
    assert list(cwd.iterdir()) == []  # nothing written to the working directory either
