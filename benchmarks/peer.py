"""Side-by-side timing against the peer (original DaCapo 0.3.5 in its own venv).

The peer's classes run in a subprocess of the peer venv (`_peer_server.py`) on the same
inputs (passed once as an ``.npz``); rounds of ours and the peer's alternate so that both see
the same machine load, and each side's figure is the median over all its calls.

Environment: ``DACAPO_PEER_PYTHON`` (default ``/work/peer-venv/bin/python``),
``DACAPO_DATA`` (default ``/work/shared/data``, the real volumes).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

PEER_PYTHON = Path(os.environ.get("DACAPO_PEER_PYTHON", "/work/peer-venv/bin/python"))
DATA = Path(os.environ.get("DACAPO_DATA", "/work/shared/data"))
SERVER = Path(__file__).with_name("_peer_server.py")


def peer_missing() -> str | None:
    """Why the peer cannot run here (None when it can)."""
    if not PEER_PYTHON.exists():
        return f"peer venv absent ({PEER_PYTHON}; build it with shared/peer/setup.sh)"
    return None


def load_tif(path: Path) -> np.ndarray:
    import tifffile

    return np.asarray(tifffile.imread(str(path)))


def real_volume(name: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """Labels and voxel size (nm, z y x) of a real volume: ``fibsem`` (dense neuron ids,
    50×100×200, 10 nm) or ``lm`` (plant nuclei, 100³, 284×127×127 nm)."""
    if name == "fibsem":
        return load_tif(DATA / "fibsem_neurons" / "labels.tif"), (10, 10, 10)
    if name == "lm":
        meta = json.loads((DATA / "lm_nuclei" / "meta.json").read_text())
        vs = tuple(int(round(v * 1000)) for v in meta["voxel_size_um_zyx"]["1135"])
        return load_tif(DATA / "lm_nuclei" / "1135_labels.tif"), vs
    raise ValueError(f"unknown volume {name!r}")


def sparse_ids(labels: np.ndarray, seed: int = 0, low: int = 100_000) -> np.ndarray:
    """``labels`` as uint64 with each nonzero id replaced by a distinct random id ≥ ``low``
    (large and sparse like proofread or agglomerated ids); 0 stays 0."""
    ids = np.unique(labels)
    ids = ids[ids != 0]
    rng = np.random.default_rng(seed)
    new = rng.choice(np.arange(low, low + 1000 * max(len(ids), 1)), len(ids), replace=False)
    lut = np.zeros(int(labels.max()) + 1, np.uint64)
    lut[ids] = np.sort(new).astype(np.uint64)
    return lut[labels]


def load() -> str:
    """The 1, 5 and 15 min load averages, as text."""
    return "load " + " ".join(f"{v:.2f}" for v in os.getloadavg())


class Peer:
    """The peer's server process on ``arrays`` (a dict of numpy arrays)."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="dacapo-peer-")
        npz = Path(self._dir.name) / "inputs.npz"
        np.savez(npz, **arrays)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "NUMBA_NUM_THREADS"):
            if var in os.environ:
                env[var] = os.environ[var]
        self._proc = subprocess.Popen(
            [str(PEER_PYTHON), str(SERVER), str(npz)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, cwd=self._dir.name, env=env,
        )

    def time(self, case: str, params: dict, repeats: int, save: bool = False):
        """Seconds per call of ``repeats`` calls; with ``save`` also the last outputs."""
        path = str(Path(self._dir.name) / "out.npz") if save else None
        req = {"case": case, "params": params, "repeats": repeats, "save": path}
        self._proc.stdin.write(json.dumps(req) + "\n")
        self._proc.stdin.flush()
        for line in self._proc.stdout:
            if line.startswith("@@"):
                answer = json.loads(line[2:])
                break
        else:
            raise RuntimeError(f"peer server died (rc {self._proc.wait()})")
        if "error" in answer:
            raise RuntimeError("peer failed:\n" + answer["error"])
        if save:
            return answer["times"], dict(np.load(path))
        return answer["times"]

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()
            self._proc.wait(timeout=60)
        self._dir.cleanup()

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def time_calls(fn: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def side_by_side(ours: Callable[[], object], peer: Callable[[int], list[float]] | None,
                 rounds: int, ours_per_round: int, peer_per_round: int = 1):
    """Alternating rounds; returns (our times, peer times or [])."""
    t_ours, t_peer = [], []
    for _ in range(rounds):
        t_ours += time_calls(ours, ours_per_round)
        if peer is not None:
            t_peer += peer(peer_per_round)
    return t_ours, t_peer


def report(case: str, mvox: float, t_ours: list[float], t_peer: list[float], goal: float | None):
    """One line: case, ours (median ms, Mvoxel/s), peer, ratio vs goal, machine load."""
    mo = statistics.median(t_ours)
    text = f"{case:<44} ours {mo * 1e3:8.1f} ms {mvox / mo:7.2f} Mvox/s (n={len(t_ours)})"
    if t_peer:
        mp = statistics.median(t_peer)
        ratio = mp / mo
        text += (f" | peer {mp * 1e3:9.1f} ms {mvox / mp:7.3f} Mvox/s (n={len(t_peer)})"
                 f" | {ratio:6.1f}x")
        if goal is not None:
            text += f" (goal >= {goal:g}x: {'met' if ratio >= goal else 'NOT met'})"
    else:
        text += " | peer skipped"
    print(text + f" | {load()}", flush=True)
    sys.stdout.flush()
