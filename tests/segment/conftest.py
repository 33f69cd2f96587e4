"""Fixtures of the segmentation tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from funlib.persistence import prepare_ds

from tests.segment.references import VOXEL


def _write_prediction(path: Path | str, data: np.ndarray) -> str:
    dims = data.ndim - 1
    array = prepare_ds(str(path), shape=data.shape, offset=(80, 40, 40)[-dims:],
                       voxel_size=VOXEL[-dims:], axis_names=["c^"] + ["z", "y", "x"][-dims:],
                       dtype=data.dtype, mode="w")
    array[array.roi] = data
    return str(path)


@pytest.fixture(scope="session")
def write_prediction() -> Callable[[Path | str, np.ndarray], str]:
    """``write_prediction(path, data)``: ``data`` (channels first) as a zarr prediction at
    offset (80, 40, 40) with the synthetic volume's voxel size; returns the path."""
    return _write_prediction


def _pg_server():
    """A throwaway PostgreSQL cluster (initdb + pg_ctl, Unix socket only) or a reason."""
    binaries = [shutil.which("initdb"), shutil.which("pg_ctl")]
    if None in binaries:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            return None, "no initdb/pg_ctl (apt-get install postgresql)"
        binaries = [str(found[-1]), str(found[-1].with_name("pg_ctl"))]
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return None, "psycopg2 is not installed"
    initdb, pg_ctl = binaries
    root = Path(tempfile.mkdtemp(prefix="pg"))
    prefix = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        if shutil.which("runuser") is None:
            return None, "running as root without runuser"
        try:
            shutil.chown(root, user="postgres")
        except (LookupError, PermissionError) as e:
            return None, f"running as root and no 'postgres' user ({e})"
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        subprocess.run(prefix + [initdb, "-D", str(root / "data"), "-A", "trust", "-U",
                                 "postgres"], check=True, capture_output=True, timeout=120)
        subprocess.run(prefix + [pg_ctl, "-D", str(root / "data"), "-l", str(root / "log"),
                                 "-w", "-o", f"-k {root} -p {port} -c listen_addresses=''",
                                 "start"], check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        shutil.rmtree(root, ignore_errors=True)
        return None, f"could not start PostgreSQL: {getattr(e, 'stderr', e)!r}"

    def stop():
        subprocess.run(prefix + [pg_ctl, "-D", str(root / "data"), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)

    return (f"postgresql://postgres@:{port}/dacapo_test?host={root}", stop), None


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server's URL (one per test session; skipped without one)."""
    server, reason = _pg_server()
    if server is None:
        print(f"PostgreSQL test skipped: {reason}")
        pytest.skip(reason)
    url, stop = server
    yield url
    stop()
