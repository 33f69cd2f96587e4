"""The peer's (original DaCapo 0.3.5) evaluation metrics in a persistent subprocess, timed
call by call, so that a benchmark can alternate ours and the peer's on the same input and
take the median of each under the same machine load.

The peer runs in its own venv (``DACAPO_PEER_PYTHON``, default ``/work/peer-venv/bin/python``;
see ``/work/shared/peer/README.md``). Inputs go through ``.npy`` files; each request runs one
case once and answers its wall time and its values as one JSON line.

Cases:

- ``binary``: ``ArrayEvaluator(truth, test, ...)`` and its 21 metric methods (the peer's
  binary evaluator body), ``clip_distance`` / ``tol_distance`` / ``resolution`` as given;
- ``voi``: ``instance_evaluator.voi(truth, seg)`` on uint64 arrays (the peer's whole
  instance evaluation: VOI split and merge only).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

PEER_PYTHON = os.environ.get("DACAPO_PEER_PYTHON", "/work/peer-venv/bin/python")

_SERVER = r'''
import json, sys, time
import numpy as np
from dacapo.experiments.tasks.evaluators.binary_segmentation_evaluator import ArrayEvaluator
from dacapo.experiments.tasks.evaluators.instance_evaluator import voi

NAMES = ["dice", "jaccard", "hausdorff", "false_negative_rate",
         "false_negative_rate_with_tolerance", "false_discovery_rate", "false_positive_rate",
         "false_positive_rate_with_tolerance", "precision", "recall", "f1_score",
         "precision_with_tolerance", "recall_with_tolerance", "f1_score_with_tolerance", "voi",
         "mean_false_positive_distance", "mean_false_negative_distance", "mean_false_distance",
         "mean_false_positive_distance_clipped", "mean_false_negative_distance_clipped",
         "mean_false_distance_clipped"]

def binary(args):
    test, truth = np.load(args["test"]), np.load(args["truth"])
    t0 = time.perf_counter()
    ev = ArrayEvaluator(truth, test, not truth.any(), not test.any(),
                        metric_params={"clip_distance": args["clip"], "tol_distance": args["tol"]},
                        resolution=tuple(args["voxel_size"]))
    values = {name: float(getattr(ev, name)()) for name in NAMES}
    return time.perf_counter() - t0, values

def instance(args):
    seg = np.load(args["seg"]).astype(np.uint64)
    truth = np.load(args["truth"]).astype(np.uint64)
    t0 = time.perf_counter()
    r = voi(truth, seg)
    return time.perf_counter() - t0, {k: float(v) for k, v in r.items()}

CASES = {"binary": binary, "voi": instance}
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    seconds, values = CASES[req["case"]](req)
    print(json.dumps({"seconds": seconds, "values": values}), flush=True)
'''


def available() -> bool:
    """Whether the peer's python exists."""
    return Path(PEER_PYTHON).exists()


class Peer:
    """``with Peer() as peer: seconds, values = peer.run("binary", test=..., truth=..., ...)``.

    Arrays passed as keyword arguments are saved to ``.npy`` once per object identity."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="peer_eval_")
        self._saved: dict[int, str] = {}
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        env.pop("PYTHONPATH", None)
        self._proc = subprocess.Popen(
            [PEER_PYTHON, "-c", _SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        first = self._proc.stdout.readline()
        if not first:
            raise RuntimeError(f"the peer ({PEER_PYTHON}) did not start")

    def _path(self, array: np.ndarray) -> str:
        key = id(array)
        if key not in self._saved:
            path = os.path.join(self._dir.name, f"{len(self._saved)}.npy")
            np.save(path, array)
            self._saved[key] = path
        return self._saved[key]

    def run(self, case: str, **kwargs) -> tuple[float, dict[str, float]]:
        request = {"case": case}
        for key, value in kwargs.items():
            request[key] = self._path(value) if isinstance(value, np.ndarray) else value
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the peer died on case {case!r}")
        answer = json.loads(line)
        return answer["seconds"], answer["values"]

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc) -> None:
        self._proc.stdin.close()
        self._proc.wait(timeout=60)
        self._dir.cleanup()
