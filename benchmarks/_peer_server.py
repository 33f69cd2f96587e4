"""Runs in the PEER venv (original DaCapo 0.3.5), started by `peer.Peer`: times the peer's
classes on the inputs of an ``.npz`` file (the params name the arrays: ``labels``, ``mask``, ``gt``) and answers timing requests on stdin/stdout.

Protocol: argv = npz path; stdin lines ``{"case": name, "params": {...}, "repeats": n,
"save": path or null}``; each answer is one stdout line ``@@{"times": [...]}`` (seconds per
call; with ``save`` the last call's outputs are written there as ``.npz``) or
``@@{"error": "..."}``. Other stdout lines are the peer's own chatter and are ignored.
Not importable from the project (its ``dacapo`` is the peer's).
"""

from __future__ import annotations

import json
import sys
import time
import traceback

import numpy as np
from funlib.geometry import Coordinate


def _array(data, voxel_size):
    from dacapo.tmp import np_to_funlib_array

    return np_to_funlib_array(data, Coordinate((0,) * len(voxel_size)), Coordinate(voxel_size))


def build(case: str, arrays, p):
    """A no-argument callable running the peer's code for ``case``; returns its outputs
    (funlib Arrays as the peer's classes return them: not converted inside the timing)."""
    from dacapo.experiments.tasks.predictors import AffinitiesPredictor, DistancePredictor

    vs = p["voxel_size"]
    if case in ("lsd_affs", "affs"):
        gt = _array(arrays[p["labels"]], vs)
        mask = _array(arrays[p["mask"]], vs)
        pred = AffinitiesPredictor(
            [Coordinate(o) for o in p["neighborhood"]],
            lsds=case == "lsd_affs",
            num_voxels=p.get("num_lsd_voxels", 20),
        )

        def run():
            target = pred.create_target(gt)
            weight, _ = pred.create_weight(gt, target, mask)
            return {"target": target, "weight": weight}

        return run
    if case == "seg_to_affgraph":
        from dacapo.utils.affinities import seg_to_affgraph

        labels = arrays[p["labels"]]
        nbh = [Coordinate(o) for o in p["neighborhood"]]
        return lambda: {"affs": seg_to_affgraph(labels, nbh)}
    if case == "distance":
        gt = _array(arrays[p["gt"]], vs)
        mask = _array(arrays[p["mask"]], vs)
        pred = DistancePredictor(["fg"], p["scale_factor"], p["mask_distances"])

        def run():
            target = pred.create_target(gt)
            weight, _ = pred.create_weight(gt, target, mask)
            return {"target": target, "weight": weight}

        return run
    raise ValueError(f"unknown case {case!r}")


def main() -> None:
    arrays = dict(np.load(sys.argv[1]))
    cache = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            key = (req["case"], json.dumps(req["params"], sort_keys=True))
            if key not in cache:
                cache[key] = build(req["case"], arrays, req["params"])
            fn = cache[key]
            times, out = [], None
            for _ in range(int(req["repeats"])):
                t0 = time.perf_counter()
                out = fn()
                times.append(time.perf_counter() - t0)
            if req.get("save") and out is not None:
                np.savez(req["save"], **{k: np.asarray(v[:]) if hasattr(v, "roi") else v
                                         for k, v in out.items()})
            answer = {"times": times}
        except Exception:  # report to the caller, keep serving
            answer = {"error": traceback.format_exc()}
        sys.stdout.write("@@" + json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
