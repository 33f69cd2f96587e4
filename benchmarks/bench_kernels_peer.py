"""Training-target kernels against the peer (original DaCapo 0.3.5), side by side in one run,
on the real volumes of ``DACAPO_DATA`` (issue 13 item 4).

Cases (each: target + weight through the predictor classes of both, same arrays, same
mask, alternating rounds, medians; the timed calls return the Arrays as the classes give
them, no conversion):

- ``lsd_affs``: `AffinitiesPredictor(NBH, lsds=True, num_lsd_voxels=5)` on the FIB-SEM
  neuron labels (50×100×200, 10 nm, ~90 objects), with the original ids and with large
  sparse uint64 ids (`peer.sparse_ids`), all-ones mask. Goal ≥ 150×.
- ``affs``: the same without LSDs (affinities target + balanced weight), FIB-SEM and LM
  nuclei (100³), original and sparse ids; plus the bare kernels (`ops.affinities` vs the
  peer's ``seg_to_affgraph``). Goal ≥ 8×.
- ``distance``: `DistancePredictor(["fg"], 1000 nm, mask_distances)` on the LM nuclei
  foreground (100³, 284×127×127 nm) with a mask whose first fifth along x is unlabelled.
  Goal ≥ 12× with ``mask_distances``.

The outputs are compared where both follow the same definition (affinity targets and
weights, the distance target's sign); LSDs and the distance weights differ by definition
(see the module docs of `dacapo.ops.lsds`, `dacapo.ops.distances`).

Run: ``PYTHONPATH=src python benchmarks/bench_kernels_peer.py [--case lsd_affs|affs|distance]
[--rounds 5]``; single-threaded (``OMP/NUMBA_NUM_THREADS=1`` unless set).
Skips the peer (prints ours only) when its venv is absent.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402

import numpy as np  # noqa: E402
from peer import Peer, load, peer_missing, real_volume, report, side_by_side, sparse_ids  # noqa: E402

NBH = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (3, 0, 0), (0, 9, 0), (0, 0, 9)]
NUM_LSD_VOXELS = 5
SCALE = 1000.0


def numpy_data(array):
    from dacapo.experiments.tasks.predictors.predictor import numpy_data as get

    return get(array)


def _array(data, voxel_size):
    from funlib.persistence import Array

    return Array(data, offset=(0,) * data.ndim, voxel_size=voxel_size)


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


def _peer_arrays(volumes):
    arrays = {}
    for name, (labels, _) in volumes.items():
        arrays[f"{name}_labels"] = labels
        arrays[f"{name}_mask"] = np.ones(labels.shape, np.uint8)
    lm = volumes["lm"][0]
    # the peer's DistancePredictor wants a channel axis on gt and mask (c^, z, y, x)
    arrays["dist_gt"] = (lm > 0).astype(np.uint8)[None]
    arrays["dist_mask"] = distance_mask(lm.shape)[None]
    return arrays


def distance_mask(shape) -> np.ndarray:
    mask = np.ones(shape, np.uint8)
    mask[:, :, : shape[2] // 5] = 0
    return mask


def case_affinities(volumes, peer, rounds, lsds: bool, check: bool, only=None):
    from dacapo.experiments.tasks.predictors import AffinitiesPredictor

    names = ["fibsem", "fibsem_sparse"] if lsds else ["fibsem", "fibsem_sparse", "lm", "lm_sparse"]
    names = [n for n in names if not only or n in only]
    for name in names:
        labels, vs = volumes[name]
        gt, mask = _array(labels, vs), _array(np.ones(labels.shape, np.uint8), vs)
        pred = AffinitiesPredictor(NBH, lsds=lsds, num_lsd_voxels=NUM_LSD_VOXELS)

        def ours(gt=gt, mask=mask, pred=pred):
            target = pred.create_target(gt)
            weight, _ = pred.create_weight(gt, target, mask)
            return target, weight

        target, weight = (numpy_data(a) for a in ours())  # warm-up (numba cache load)
        params = {"voxel_size": list(vs), "neighborhood": NBH, "num_lsd_voxels": NUM_LSD_VOXELS,
                  "labels": f"{name}_labels", "mask": f"{name}_mask"}
        case = "lsd_affs" if lsds else "affs"
        call, first = None, []
        if peer is not None:
            first, out = peer.time(case, params, 1, save=True)  # also a timing sample
            if check:
                k = len(NBH)
                same_t = np.array_equal(out["target"][:k] > 0.5, target[:k] > 0.5)
                dw = np.abs(out["weight"][:k] - weight[:k]).max()
                print(f"  {name}: affinity targets identical to the peer's: {same_t}; "
                      f"max |weight - peer| (affinity channels) {dw:.1e} (the peer weights "
                      "the edges that leave the crop; here they get 0)")

            def call(n, params=params, case=case):
                return peer.time(case, params, n)
        t_o, t_p = side_by_side(ours, call, rounds, 3 if lsds else 5, 1 if lsds else 2)
        label = f"{case} target+weight {name} {labels.shape}"
        report(label, labels.size / 1e6, t_o, first + t_p, 150 if lsds else 8)


def case_affinity_kernel(volumes, peer, rounds):
    from dacapo.ops.affinities import affinities

    for name in ("fibsem", "fibsem_sparse"):
        labels, vs = volumes[name]
        params = {"voxel_size": list(vs), "neighborhood": NBH, "labels": f"{name}_labels"}
        call = None if peer is None else (lambda n, p=params: peer.time("seg_to_affgraph", p, n))
        t_o, t_p = side_by_side(lambda lab=labels: affinities(lab, NBH), call, rounds, 5, 3)
        report(f"affinities kernel {name} {labels.dtype}", labels.size / 1e6, t_o, t_p, None)


def case_distance(volumes, peer, rounds):
    from dacapo.experiments.tasks.predictors import DistancePredictor

    lm, vs = volumes["lm"]
    gt_np = (lm > 0).astype(np.uint8)
    gt, mask = _array(gt_np, vs), _array(distance_mask(lm.shape), vs)
    for md in (False, True):
        pred = DistancePredictor(["fg"], SCALE, mask_distances=md)

        def ours(pred=pred):
            target = pred.create_target(gt)
            weight, _ = pred.create_weight(gt, target, mask)
            return target, weight

        target = numpy_data(ours()[0])
        params = {"voxel_size": list(vs), "scale_factor": SCALE, "mask_distances": md,
                  "gt": "dist_gt", "mask": "dist_mask"}
        call, first = None, []
        if peer is not None:
            first, out = peer.time("distance", params, 1, save=True)
            peer_t = out["target"].reshape(target.shape)
            same_sign = np.mean(np.sign(peer_t) == np.sign(target))
            print(f"  target sign agrees with the peer's at {same_sign:.4%} of voxels; "
                  f"max |target - peer| {np.abs(peer_t - target).max():.2e}")

            def call(n, params=params):
                return peer.time("distance", params, n)
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
    missing = "--no-peer given" if args.no_peer else peer_missing()
    if missing:
        print(f"peer skipped: {missing}")
    print(f"threads: 1 (OMP/NUMBA_NUM_THREADS={os.environ['NUMBA_NUM_THREADS']}); {load()}")
    with contextlib.ExitStack() as stack:
        peer = None
        if not missing:
            peer = stack.enter_context(Peer(_peer_arrays(volumes)))
        if args.case in ("lsd_affs", "all"):
            case_affinities(volumes, peer, args.rounds, lsds=True, check=True, only=args.volumes)
        if args.case in ("affs", "all"):
            case_affinities(volumes, peer, args.rounds, lsds=False, check=True, only=args.volumes)
            case_affinity_kernel(volumes, peer, args.rounds)
        if args.case in ("distance", "all"):
            case_distance(volumes, peer, args.rounds)


if __name__ == "__main__":
    main()
