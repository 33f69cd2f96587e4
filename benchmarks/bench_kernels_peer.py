"""Training-target kernels against the peer (original DaCapo 0.3.5), side by side in one run,
on the real volumes of `_harness.data_dir` (issue 13 item 4).

Cases (each: target + weight through the predictor classes of both, same arrays, same
mask, alternating rounds, medians; the timed calls return the Arrays as the classes give
them, no conversion):

- ``lsd_affs``: `AffinitiesPredictor(NBH, lsds=True, num_lsd_voxels=5)` on the FIB-SEM
  neuron labels (50×100×200, 10 nm, ~90 objects), with the original ids and with large
  sparse uint64 ids (`sparse_ids`), all-ones mask. Goal ≥ 150×.
- ``affs``: the same without LSDs (affinities target + balanced weight), FIB-SEM and LM
  nuclei (100³), original and sparse ids; plus the bare kernels (`ops.affinities` vs the
  peer's ``seg_to_affgraph``). Goal ≥ 8×.
- ``distance``: `DistancePredictor(["fg"], 1000 nm, mask_distances)` on the LM nuclei
  foreground (100³, 284×127×127 nm) with a mask whose first fifth along x is unlabelled.
  Goal ≥ 12× with ``mask_distances``.

The outputs are compared where both follow the same definition (affinity targets and
weights, the distance target's sign); LSDs and the distance weights differ by definition
(see the module docs of `dacapo.ops.lsds`, `dacapo.ops.distances`).

Run: ``.venv/bin/python benchmarks/bench_kernels_peer.py [--case lsd_affs|affs|distance]
[--rounds 5]``; single-threaded (``OMP/NUMBA_NUM_THREADS=1`` unless set).
Skips the peer (prints ours only) when ``DACAPO_PEER_PYTHON`` is unset.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from collections.abc import Callable

import numpy as np
import tifffile
from _harness import dataset, load, open_peer, pin_threads, side_by_side
from funlib.persistence import Array

from dacapo.experiments.tasks.predictors import AffinitiesPredictor, DistancePredictor
from dacapo.experiments.tasks.predictors.predictor import numpy_data
from dacapo.ops.affinities import affinities

NBH = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (3, 0, 0), (0, 9, 0), (0, 0, 9)]
NUM_LSD_VOXELS = 5
SCALE = 1000.0


def real_volume(name: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """Labels and voxel size (nm, z y x) of a real volume: ``fibsem`` (dense neuron ids,
    50×100×200, 10 nm) or ``lm`` (plant nuclei, 100³, 284×127×127 nm)."""
    if name == "fibsem":
        return np.asarray(tifffile.imread(dataset("fibsem_neurons") / "labels.tif")), (10, 10, 10)
    if name == "lm":
        folder = dataset("lm_nuclei")
        meta = json.loads((folder / "meta.json").read_text())
        vs = tuple(int(round(v * 1000)) for v in meta["voxel_size_um_zyx"]["1135"])
        return np.asarray(tifffile.imread(folder / "1135_labels.tif")), vs
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


def _array(data, voxel_size):
    return Array(data, offset=(0,) * data.ndim, voxel_size=voxel_size)


def _target_and_weight(predictor, gt, mask) -> Callable[[], tuple]:
    """A no-argument call of the predictor's target + weight (the Arrays it gives)."""

    def run():
        target = predictor.create_target(gt)
        weight, _ = predictor.create_weight(gt, target, mask)
        return target, weight

    return run


def _inputs():
    fib, fib_vs = real_volume("fibsem")
    lm, lm_vs = real_volume("lm")
    volumes = {
        "fibsem": (fib, fib_vs),
        "fibsem_sparse": (sparse_ids(fib, seed=1), fib_vs),
        "lm": (lm, lm_vs),
        "lm_sparse": (sparse_ids(lm, seed=2), lm_vs),
    }
    return volumes


def distance_mask(shape) -> np.ndarray:
    mask = np.ones(shape, np.uint8)
    mask[:, :, : shape[2] // 5] = 0
    return mask


def case_affinities(volumes, peer, rounds, lsds: bool, check: bool, only=None):
    names = ["fibsem", "fibsem_sparse"] if lsds else ["fibsem", "fibsem_sparse", "lm", "lm_sparse"]
    names = [n for n in names if not only or n in only]
    for name in names:
        labels, vs = volumes[name]
        ones = np.ones(labels.shape, np.uint8)
        pred = AffinitiesPredictor(NBH, lsds=lsds, num_lsd_voxels=NUM_LSD_VOXELS)
        ours = _target_and_weight(pred, _array(labels, vs), _array(ones, vs))
        target, weight = (numpy_data(a) for a in ours())  # warm-up (numba cache load)
        params = {"voxel_size": list(vs), "neighborhood": NBH, "num_lsd_voxels": NUM_LSD_VOXELS,
                  "labels": labels, "mask": ones}
        case = "lsd_affs" if lsds else "affs"
        call, first = None, []
        if peer is not None:
            result = peer.run(case, params, save=True)  # also a timing sample
            first, out = result.times, result.arrays
            if check:
                k = len(NBH)
                same_t = np.array_equal(out["target"][:k] > 0.5, target[:k] > 0.5)
                dw = np.abs(out["weight"][:k] - weight[:k]).max()
                print(f"  {name}: affinity targets identical to the peer's: {same_t}; "
                      f"max |weight - peer| (affinity channels) {dw:.1e} (the peer weights "
                      "the edges that leave the crop; here they get 0)")

            def call(n, params=params, case=case):
                return peer.run(case, params, n).times
        t_o, t_p = side_by_side(ours, call, rounds, 3 if lsds else 5, 1 if lsds else 2)
        label = f"{case} target+weight {name} {labels.shape}"
        report(label, labels.size / 1e6, t_o, first + t_p, 150 if lsds else 8)


def case_affinity_kernel(volumes, peer, rounds):
    for name in ("fibsem", "fibsem_sparse"):
        labels, vs = volumes[name]
        params = {"voxel_size": list(vs), "neighborhood": NBH, "labels": labels}
        call = None if peer is None else (
            lambda n, p=params: peer.run("seg_to_affgraph", p, n).times)
        t_o, t_p = side_by_side(lambda lab=labels: affinities(lab, NBH), call, rounds, 5, 3)
        report(f"affinities kernel {name} {labels.dtype}", labels.size / 1e6, t_o, t_p, None)


def case_distance(volumes, peer, rounds):
    lm, vs = volumes["lm"]
    gt_np = (lm > 0).astype(np.uint8)
    mask_np = distance_mask(lm.shape)
    gt, mask = _array(gt_np, vs), _array(mask_np, vs)
    # the peer's DistancePredictor wants a channel axis on gt and mask (c^, z, y, x)
    peer_gt, peer_mask = gt_np[None], mask_np[None]
    for md in (False, True):
        ours = _target_and_weight(DistancePredictor(["fg"], SCALE, mask_distances=md), gt, mask)
        target = numpy_data(ours()[0])
        params = {"voxel_size": list(vs), "scale_factor": SCALE, "mask_distances": md,
                  "gt": peer_gt, "mask": peer_mask}
        call, first = None, []
        if peer is not None:
            result = peer.run("distance", params, save=True)
            first, out = result.times, result.arrays
            peer_t = out["target"].reshape(target.shape)
            same_sign = np.mean(np.sign(peer_t) == np.sign(target))
            print(f"  target sign agrees with the peer's at {same_sign:.4%} of voxels; "
                  f"max |target - peer| {np.abs(peer_t - target).max():.2e}")

            def call(n, params=params):
                return peer.run("distance", params, n).times
        t_o, t_p = side_by_side(ours, call, rounds, 3, 1)
        report(f"distance target+weight lm mask_distances={md}", lm.size / 1e6, t_o, first + t_p,
               12 if md else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["lsd_affs", "affs", "distance", "all"], default="all")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-peer", action="store_true", help="time ours only")
    parser.add_argument("--volumes", nargs="+", default=None,
                        help="only these label volumes (fibsem, fibsem_sparse, lm, lm_sparse)")
    args = parser.parse_args()
    volumes = _inputs()
    print(f"threads: 1 (OMP/NUMBA_NUM_THREADS={os.environ['NUMBA_NUM_THREADS']}); {load()}")
    with open_peer("--no-peer given" if args.no_peer else None) as peer:
        if args.case in ("lsd_affs", "all"):
            case_affinities(volumes, peer, args.rounds, lsds=True, check=True, only=args.volumes)
        if args.case in ("affs", "all"):
            case_affinities(volumes, peer, args.rounds, lsds=False, check=True, only=args.volumes)
            case_affinity_kernel(volumes, peer, args.rounds)
        if args.case in ("distance", "all"):
            case_distance(volumes, peer, args.rounds)


if __name__ == "__main__":
    pin_threads()
    main()
