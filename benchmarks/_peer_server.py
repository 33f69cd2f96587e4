"""Runs in the PEER's interpreter (original DaCapo 0.3.5), started by `_harness.Peer`: times
the peer's code on our inputs and answers requests on stdin/stdout.

Protocol: stdin lines ``{"case": name, "params": {...}, "repeats": n, "save": path or
null}``, where a parameter ``{"npy": path}`` is a numpy array saved there; each answer is
one stdout line ``@@{"times": [...], "values": {...}}`` (seconds per call; the last call's
numbers; with ``save`` its output arrays written there as ``.npz``) or
``@@{"error": "..."}``. Other stdout lines are the peer's own chatter. A case's inputs
(funlib Arrays, the predictor) are prepared once per (case, params), outside the timing.

Cases:

- ``lsd_affs`` / ``affs``: ``AffinitiesPredictor`` target + weight (``labels``, ``mask``,
  ``neighborhood``, ``num_lsd_voxels``, ``voxel_size``);
- ``seg_to_affgraph``: the peer's affinity kernel (``labels``, ``neighborhood``);
- ``distance``: ``DistancePredictor(["fg"], scale_factor, mask_distances)`` target +
  weight (``gt``, ``mask`` with a channel axis, ``voxel_size``);
- ``binary``: ``ArrayEvaluator(truth, test, ...)`` and its 21 metric methods (the peer's
  binary evaluator body; ``clip``, ``tol``, ``voxel_size``);
- ``voi``: ``instance_evaluator.voi(truth, seg)`` on uint64 arrays (the peer's whole
  instance evaluation: VOI split and merge only).

Not importable from the project (its ``dacapo`` is the peer's).
"""

from __future__ import annotations

import json
import sys
import time
import traceback

import numpy as np
from funlib.geometry import Coordinate

BINARY_METRICS = [
    "dice", "jaccard", "hausdorff", "false_negative_rate",
    "false_negative_rate_with_tolerance", "false_discovery_rate", "false_positive_rate",
    "false_positive_rate_with_tolerance", "precision", "recall", "f1_score",
    "precision_with_tolerance", "recall_with_tolerance", "f1_score_with_tolerance", "voi",
    "mean_false_positive_distance", "mean_false_negative_distance", "mean_false_distance",
    "mean_false_positive_distance_clipped", "mean_false_negative_distance_clipped",
    "mean_false_distance_clipped",
]
_loaded: dict[str, np.ndarray] = {}


def _decode(value):
    """A ``{"npy": path}`` parameter as its array (each file read once)."""
    if isinstance(value, dict) and set(value) == {"npy"}:
        if value["npy"] not in _loaded:
            _loaded[value["npy"]] = np.load(value["npy"])
        return _loaded[value["npy"]]
    return value


def _array(data, voxel_size):
    from dacapo.tmp import np_to_funlib_array

    return np_to_funlib_array(data, Coordinate((0,) * len(voxel_size)), Coordinate(voxel_size))


def _target_and_weight(predictor, gt, mask):
    """A no-argument call of the predictor's target + weight (outputs as funlib Arrays,
    as the peer's classes return them: not converted inside the timing)."""

    def run():
        target = predictor.create_target(gt)
        weight, _ = predictor.create_weight(gt, target, mask)
        return {"target": target, "weight": weight}

    return run


def _binary(p):
    from dacapo.experiments.tasks.evaluators.binary_segmentation_evaluator import (
        ArrayEvaluator,
    )

    test, truth = p["test"], p["truth"]

    def run():
        ev = ArrayEvaluator(truth, test, not truth.any(), not test.any(),
                            metric_params={"clip_distance": p["clip"], "tol_distance": p["tol"]},
                            resolution=tuple(p["voxel_size"]))
        return {name: float(getattr(ev, name)()) for name in BINARY_METRICS}

    return run


def _voi(p):
    from dacapo.experiments.tasks.evaluators.instance_evaluator import voi

    seg, truth = p["seg"].astype(np.uint64), p["truth"].astype(np.uint64)
    return lambda: {k: float(v) for k, v in voi(truth, seg).items()}


def build(case: str, p: dict):
    """A no-argument callable running the peer's code for ``case``; returns a dict of
    numbers or arrays."""
    from dacapo.experiments.tasks.predictors import AffinitiesPredictor, DistancePredictor

    if case in ("lsd_affs", "affs"):
        vs = p["voxel_size"]
        predictor = AffinitiesPredictor(
            [Coordinate(o) for o in p["neighborhood"]],
            lsds=case == "lsd_affs",
            num_voxels=p.get("num_lsd_voxels", 20),
        )
        return _target_and_weight(predictor, _array(p["labels"], vs), _array(p["mask"], vs))
    if case == "seg_to_affgraph":
        from dacapo.utils.affinities import seg_to_affgraph

        labels, nbh = p["labels"], [Coordinate(o) for o in p["neighborhood"]]
        return lambda: {"affs": seg_to_affgraph(labels, nbh)}
    if case == "distance":
        vs = p["voxel_size"]
        predictor = DistancePredictor(["fg"], p["scale_factor"], p["mask_distances"])
        return _target_and_weight(predictor, _array(p["gt"], vs), _array(p["mask"], vs))
    if case == "binary":
        return _binary(p)
    if case == "voi":
        return _voi(p)
    raise ValueError(f"unknown case {case!r}")


def answer(req: dict, cache: dict) -> dict:
    key = (req["case"], json.dumps(req["params"], sort_keys=True))
    if key not in cache:
        cache[key] = build(req["case"], {k: _decode(v) for k, v in req["params"].items()})
    fn = cache[key]
    times, out = [], {}
    for _ in range(int(req["repeats"])):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    values = {k: v for k, v in out.items() if isinstance(v, float)}
    if req.get("save"):
        np.savez(req["save"], **{k: np.asarray(v[:]) if hasattr(v, "roi") else v
                                 for k, v in out.items() if k not in values})
    return {"times": times, "values": values}


def main() -> None:
    cache: dict = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = answer(json.loads(line), cache)
        except Exception:  # report to the caller, keep serving
            reply = {"error": traceback.format_exc()}
        sys.stdout.write("@@" + json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
