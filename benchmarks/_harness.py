"""What the benchmarks share: threads, timing, the real volumes, the peer.

- `pin_threads`: a benchmark measured on one thread calls it first, under
  ``if __name__ == "__main__":`` (see there for how it pins before numpy and torch load);
- timing: `timed` (one call), `repeat` (`Times`: min, median, CPU time) and
  `side_by_side` (alternating rounds of ours and the peer's, so both see the same load);
  `load` prints the machine's load beside the figures (the machine is shared);
- `data_dir` / `dataset`: the real volumes, ``$DACAPO_DATA`` or else ``../shared/data``
  beside the repository (`_data` reads a dataset folder's files and meta.json);
  `work_dir`: the quality benchmarks' work folder for a data folder;
- `Peer` / `open_peer`: the original DaCapo 0.3.5 ("the peer") in a subprocess of its own
  interpreter, ``$DACAPO_PEER_PYTHON`` (unset: the peer is skipped with a one-line
  message), serving `_peer_server.py`'s cases.

The scripts import it as a top-level module: ``python benchmarks/x.py`` puts
``benchmarks/`` on the module path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PEER_SERVER = Path(__file__).with_name("_peer_server.py")
#: the thread counts OpenMP, MKL, OpenBLAS and numba read from the environment as they load
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "NUMBA_NUM_THREADS")
#: modules that size those thread pools when they are imported
_POOLED = ("numpy", "scipy", "torch", "numba")


# --------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------


def pin_threads() -> None:
    """Run this benchmark on one thread: `THREAD_VARIABLES` set to 1 where unset (a value
    already in the environment is kept).

    The pools are sized when numpy, scipy, torch or numba load, which a script's imports
    have already done; so when a variable was missing and one of them is loaded, the
    script starts again in a fresh interpreter (same arguments, ``os.execv``) that loads
    them pinned. Only a call from the script being run (``__main__``) restarts; from a
    module imported elsewhere, only the environment is set (for child processes)."""
    missing = [var for var in THREAD_VARIABLES if var not in os.environ]
    for var in missing:
        os.environ[var] = "1"
    caller = sys._getframe(1).f_globals.get("__name__")
    if missing and caller == "__main__" and any(m in sys.modules for m in _POOLED):
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


# --------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Wall seconds of one call ``fn(*args, **kwargs)``, and its result."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def log_entry(path: Path, entry: dict, show: bool = True) -> None:
    """Append ``entry`` as one JSON line to ``path``; with ``show``, print it indented."""
    with open(path, "a") as f:
        f.write(json.dumps(entry) + "\n")
    if show:
        print(json.dumps(entry, indent=1), flush=True)


@dataclass
class Times:
    """Seconds of repeated calls, wall clock and this process' CPU time (all threads),
    and the last call's result."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    result: Any = None

    @property
    def min(self) -> float:
        return min(self.wall)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_min(self) -> float:
        return min(self.cpu)


def repeat(fn: Callable[..., Any], repeats: int, *args: Any, warmup: int = 0) -> Times:
    """``warmup`` untimed calls ``fn(*args)``, then ``repeats`` timed ones."""
    for _ in range(warmup):
        fn(*args)
    times = Times()
    for _ in range(repeats):
        cpu = time.process_time()
        wall = time.perf_counter()
        times.result = fn(*args)
        times.wall.append(time.perf_counter() - wall)
        times.cpu.append(time.process_time() - cpu)
    return times


def side_by_side(ours: Callable[[], Any], theirs: Callable[[int], list[float]] | None,
                 rounds: int, ours_per_round: int,
                 theirs_per_round: int = 1) -> tuple[list[float], list[float]]:
    """Alternating rounds, so that both sides see the same machine load: per round
    ``ours_per_round`` calls of ``ours`` timed here, then ``theirs(theirs_per_round)``,
    which answers its own seconds per call (the peer's, measured in its process); no
    peer rounds when ``theirs`` is None. Returns (our times, their times)."""
    t_ours: list[float] = []
    t_theirs: list[float] = []
    for _ in range(rounds):
        t_ours += repeat(ours, ours_per_round).wall
        if theirs is not None:
            t_theirs += theirs(theirs_per_round)
    return t_ours, t_theirs


def load() -> str:
    """The 1, 5 and 15 min load averages, as text."""
    return "load " + " ".join(f"{v:.2f}" for v in os.getloadavg())


# --------------------------------------------------------------------------
# the real volumes
# --------------------------------------------------------------------------


def data_dir() -> Path:
    """The folder of the real volumes: ``$DACAPO_DATA``, else ``../shared/data`` beside
    the repository."""
    env = os.environ.get("DACAPO_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


def work_dir(data: str | Path) -> Path:
    """The quality benchmarks' default work folder for the data folder ``data``:
    ``quality_runs`` beside the sources for ``../shared/data`` (our volumes), else
    ``quality_runs/<folder name>-<8 hex digits of its path>``, so that the converted volumes
    and runs of other volumes never mix with ours (a run folder of the same name is resumed)."""
    data = Path(data).resolve()
    if data == (ROOT.parent / "shared" / "data").resolve():
        return ROOT / "quality_runs"
    digest = hashlib.sha1(str(data).encode()).hexdigest()[:8]
    return ROOT / "quality_runs" / f"{data.name}-{digest}"


def dataset(name: str) -> Path:
    """The folder of real volume ``name``; exits with a message when it is absent."""
    path = data_dir() / name
    if not path.is_dir():
        sys.exit(f"{path} absent: the real volumes are in $DACAPO_DATA, else ../shared/data "
                 "beside the repository")
    return path


# --------------------------------------------------------------------------
# the peer
# --------------------------------------------------------------------------


def peer_missing() -> str | None:
    """Why the peer cannot run here (None when it can)."""
    python = os.environ.get("DACAPO_PEER_PYTHON")
    if not python:
        return "DACAPO_PEER_PYTHON is unset (the python of the original DaCapo 0.3.5's venv)"
    if not Path(python).is_file():
        return f"DACAPO_PEER_PYTHON={python} does not exist"
    return None


@dataclass
class PeerResult:
    """One request to the peer: seconds per call (timed in its process), the last call's
    numbers and, when asked to save them, its output arrays."""

    times: list[float]
    values: dict[str, float]
    arrays: dict[str, np.ndarray]


class Peer:
    """`_peer_server.py` in the peer's interpreter, answering timed requests.

    Numpy arrays among a request's parameters go to the peer as ``.npy`` files, written
    once per array object (the object is kept, so its identity is not reused)."""

    def __init__(self, python: str) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="dacapo-peer-")
        self._saved: dict[int, tuple[np.ndarray, str]] = {}
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self._proc = subprocess.Popen(
            [python, str(PEER_SERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, cwd=self._dir.name, env=env,
        )

    def _param(self, value: Any) -> Any:
        if not isinstance(value, np.ndarray):
            return value
        if id(value) not in self._saved:
            path = str(Path(self._dir.name) / f"{len(self._saved)}.npy")
            np.save(path, value)
            self._saved[id(value)] = (value, path)
        return {"npy": self._saved[id(value)][1]}

    def run(self, case: str, params: dict, repeats: int = 1, save: bool = False) -> PeerResult:
        """``repeats`` calls of the peer's ``case`` on ``params`` (its inputs prepared once,
        outside the timing)."""
        out = str(Path(self._dir.name) / "out.npz") if save else None
        request = {"case": case, "params": {k: self._param(v) for k, v in params.items()},
                   "repeats": repeats, "save": out}
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        for line in self._proc.stdout:  # other lines are the peer's own chatter
            if line.startswith("@@"):
                answer = json.loads(line[2:])
                break
        else:
            raise RuntimeError(f"the peer died on case {case!r} (rc {self._proc.wait()})")
        if "error" in answer:
            raise RuntimeError(f"the peer failed on case {case!r}:\n{answer['error']}")
        arrays = dict(np.load(out)) if out else {}
        return PeerResult(answer["times"], answer["values"], arrays)

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()
            self._proc.wait(timeout=60)
        self._dir.cleanup()

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def open_peer(skip: str | None = None) -> Iterator[Peer | None]:
    """The peer, or None after a one-line message saying why it is skipped (``skip``: a
    reason of the caller's, e.g. ``--no-peer``; else `peer_missing`)."""
    why = skip or peer_missing()
    if why:
        print(f"peer skipped: {why}; timing ours only", flush=True)
        yield None
        return
    with Peer(os.environ["DACAPO_PEER_PYTHON"]) as peer:
        yield peer
