"""The data worker's spatial augmentation: ours against the per-point formulation.

The resampling of a training sample (in-plane rotation, elastic field, misalignment) needs
one source coordinate per voxel. The per-point formulation (dacapo before 2026-12-07)
builds a list of every voxel's world point, evaluates each part of the displacement on it
and does so once per array (raw, GT, mask); ours (`dacapo.training.augment.Displacement`)
computes rotation and misalignment on per-axis grids that broadcast and the coordinates
once per crop shape. Both give identical arrays (checked here on every input, and in
`tests/training/test_augment.py`). Inputs: crops of the 20-minute plans with their
augmentations (rotation; misalignment on the anisotropic FIB-SEM stack; no plan uses the
elastic field, shown last for completeness); float raw, uint32 GT, uint8 mask; the two
alternate sample by sample, CPU time per sample, medians of 5 after a warm-up.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_augment.py``.
"""

from __future__ import annotations

import math
import statistics
import time

import numpy as np
from _harness import load, pin_threads
from funlib.geometry import Coordinate
from scipy.ndimage import map_coordinates

from dacapo.experiments.trainer_config import AugmentConfig
from dacapo.training.augment import displace, spatial_transform

CASES = [  # name, voxel size, raw shape, GT shape, config (the plans': no elastic field)
    ("lm_nuclei 62x120²", Coordinate(284, 127, 127), (62, 120, 120), (50, 106, 106),
     AugmentConfig(rotate=True)),
    ("fibsem 34x52²", Coordinate(40, 8, 8), (34, 52, 52), (18, 36, 36),
     AugmentConfig(rotate=True, misalign_probability=1.0, misalign_max=32)),
    ("organelles 3x680²", Coordinate(50, 4, 4), (3, 680, 680), (1, 592, 592),
     AugmentConfig(rotate=True)),
    ("2D nuclei 508²", Coordinate(4, 4), (508, 508), (420, 420), AugmentConfig(rotate=True)),
    ("fibsem 34x52², elastic", Coordinate(40, 8, 8), (34, 52, 52), (18, 36, 36),
     AugmentConfig(rotate=True, elastic_magnitude=20.0, misalign_probability=1.0,
                   misalign_max=32)),
]


def per_point(array: np.ndarray, voxel_size, d, order: int) -> np.ndarray:
    """The per-point formulation: every voxel's world point in a list, each part's
    displacement evaluated on it, once per array."""
    dims = len(voxel_size)
    shape = array.shape[array.ndim - dims:]
    axes = [(np.arange(s) - (s - 1) / 2.0) * v for s, v in zip(shape, voxel_size)]
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    points = mesh.reshape(-1, dims)
    total = np.zeros_like(points)
    if d.elastic is not None:
        total += d.elastic(points)
    if d.rotation is not None:
        c, s_ = d.rotation
        out = np.zeros_like(points)
        y, x = points[:, -2], points[:, -1]
        out[:, -2] = c * y - s_ * x - y
        out[:, -1] = s_ * y + c * x - x
        total += out
    if d.misalign is not None:
        cut, slip, shift, t = d.misalign
        out = np.zeros_like(points)
        z = points[:, 0]
        moved = np.abs(z - cut) < t / 2 if slip else z >= cut
        out[moved, 1:] = shift
        total += out
    src = (mesh + total.reshape(mesh.shape)) / np.asarray(voxel_size, dtype=float) \
        + (np.asarray(shape) - 1) / 2.0
    coords = np.moveaxis(src, -1, 0)
    flat = array.reshape((-1,) + tuple(shape))
    out = np.stack([map_coordinates(c, coords, order=order, mode="nearest") for c in flat])
    return out.reshape(array.shape).astype(array.dtype, copy=False)


def main() -> None:
    pin_threads()
    print(f"| crop (raw / GT) | parts | per-point (s per sample) | ours (s) | ours / per-point "
          f"| identical |  ({load()})")
    print("|---|---|---|---|---|---|")
    for name, vs, raw_shape, gt_shape, cfg in CASES:
        rng = np.random.default_rng(0)
        arrays = [rng.random((1, *raw_shape)).astype(np.float32),
                  rng.integers(0, 50, gt_shape).astype(np.uint32), np.ones(gt_shape, np.uint8)]
        extent = Coordinate(n * v for n, v in zip(raw_shape, vs))
        times: dict[str, list[float]] = {"per_point": [], "ours": []}
        same = True
        for seed in range(6):
            d = spatial_transform(extent, cfg, vs, np.random.default_rng(seed))
            t = time.process_time()
            ref = [per_point(a, vs, d, 1 if i == 0 else 0) for i, a in enumerate(arrays)]
            t1 = time.process_time()
            raw, labels = displace(d, arrays[0], arrays[1:], vs)
            got = [raw, *labels]
            t2 = time.process_time()
            same &= all(np.array_equal(a, b) for a, b in zip(ref, got))
            if seed:  # the first is a warm-up
                times["per_point"].append(t1 - t)
                times["ours"].append(t2 - t1)
        parts = "+".join(p for p, on in (("elastic", cfg.elastic_magnitude > 0),
                                         ("rotation", cfg.rotate),
                                         ("misalign", cfg.misalign_probability > 0)) if on)
        a, b = (statistics.median(times[k]) for k in ("per_point", "ours"))
        print(f"| {name} | {parts} | {a:.3f} | {b:.3f} | {b / a:.2f} | {same} |", flush=True)
        assert same and math.isfinite(b)


if __name__ == "__main__":
    main()
