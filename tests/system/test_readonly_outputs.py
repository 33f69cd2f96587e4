"""Read-only targets: every command that writes ends in one ``error:`` line naming the path.

For each command that writes — convert, plan -o, train --root, validate, apply (its output,
and its run directory's logs), downsample, export, demo --root — the place it writes is
locked, ``dacapo`` runs in a fresh process, and it must exit with code 2 printing one
line ``error: ...`` that names a path in the locked folder, without a traceback (issue 21,
item 3: before, all but apply's output check ended in a `PermissionError` traceback and
exit code 1).

Locking as in ``test_readonly_inputs.py``: ``chmod a-w`` on every file and folder; root
ignores modes, so for root also ``chattr +i`` (immutable). Where that cannot be set up the
test is skipped with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from dacapo.io.config_yaml import to_yaml
from dacapo.io.ome_write import write_image
from dacapo.training.loop import train_run


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_data, tiny_run) -> dict[str, Path]:
    """A tiny trained run (checkpoint 6), its data, its config YAML, and an OME-NGFF image
    large enough for a pyramid level."""
    root = tmp_path_factory.mktemp("readonly_outputs")
    container = tiny_data(root)
    rc = tiny_run(container)
    run = train_run(rc, root / "runs", progress=False, validate=False)
    to_yaml(rc, root / "run.yaml")
    image = root / "img.zarr" / "raw"
    write_image(image, np.arange(16 * 96 * 96, dtype=np.uint32).reshape(16, 96, 96) % 251,
                (0, 0, 0), (8, 8, 8))
    return {"run": run.path, "yaml": root / "run.yaml", "image": image,
            "raw": container / "validate" / "raw", "gt": container / "train" / "fg",
            "train_raw": container / "train" / "raw"}


def _unlock(paths: list[Path], immutable: bool) -> None:
    if immutable:
        subprocess.run(["chattr", "-i", *map(str, paths)], capture_output=True)
    for p in paths:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


@pytest.fixture
def lock() -> Iterator[Callable[[Path], Path]]:
    """``lock(folder)``: ``folder`` (created if missing) and everything in it made
    unwritable, also for root; undone afterwards."""
    locked: list[tuple[list[Path], bool]] = []

    def _lock(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder, *folder.rglob("*")]
        for p in paths:
            p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        immutable = os.geteuid() == 0
        if immutable and not shutil.which("chattr"):
            _unlock(paths, False)
            pytest.skip("running as root, which ignores permission bits, and chattr is missing")
        if immutable:
            res = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True,
                                 text=True)
            if res.returncode:
                _unlock(paths, True)
                pytest.skip(f"running as root and chattr +i fails here: {res.stderr.strip()}")
        locked.append((paths, immutable))
        try:
            (folder / ".probe").mkdir()
        except OSError:
            return folder
        (folder / ".probe").rmdir()
        pytest.skip(f"{folder} is still writable after locking it")

    yield _lock
    for paths, immutable in locked:
        _unlock(paths, immutable)


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


#: command id -> (setup, tmp folder, lock) -> (arguments, the locked folder)
CASES: dict[str, Callable[[dict, Path, Callable], tuple[list[str], Path]]] = {
    "convert": lambda s, d, lock: (
        ["convert", str(s["raw"]), str(lock(d / "locked") / "c.zarr" / "raw")], d / "locked"),
    "plan": lambda s, d, lock: (
        ["plan", str(s["gt"]), "--raw", str(s["train_raw"]), "--task", "distance",
         "--no-measure", "-o", str(lock(d / "locked") / "plan.yaml")], d / "locked"),
    "train": lambda s, d, lock: (
        ["train", str(s["yaml"]), "--root", str(lock(d / "locked") / "runs")], d / "locked"),
    "validate": lambda s, d, lock: (
        ["validate", str(lock(_copy(s["run"], d / "run"))), "--iteration", "6",
         "--workers", "0"], d / "run"),
    "apply_output": lambda s, d, lock: (
        ["apply", str(s["run"]), "--input", str(s["raw"]), "--output",
         str(lock(d / "locked") / "o.zarr" / "seg"), "--iteration", "6", "--workers", "0"],
        d / "locked"),
    "apply_run_dir": lambda s, d, lock: (
        ["apply", str(lock(_copy(s["run"], d / "run"))), "--input", str(s["raw"]), "--output",
         str(d / "o.zarr" / "seg"), "--iteration", "6", "--workers", "0"], d / "run"),
    "downsample": lambda s, d, lock: (
        ["downsample", str(_copy(s["image"].parent, d / "img.zarr") / "raw")],
        lock(d / "img.zarr")),
    "export": lambda s, d, lock: (
        ["export", str(s["run"]), str(lock(d / "locked") / "model.zip"), "--iteration", "6"],
        d / "locked"),
    "demo": lambda s, d, lock: (
        ["demo", "--root", str(lock(d / "locked") / "demo"), "--quick"], d / "locked"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_read_only_target_is_one_error_line_naming_it(case, setup, tmp_path, lock,
                                                         dacapo_cli):
    if case == "export":
        pytest.importorskip("bioimageio.spec")
    args, locked = CASES[case](setup, tmp_path, lock)
    result = dacapo_cli(*args, cwd=tmp_path)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.stderr
    assert re.fullmatch(rf"error: .*'{re.escape(str(locked))}(/[^']*)?'.*", errors[0]), errors[0]
    assert result.returncode == 2, result.stderr
