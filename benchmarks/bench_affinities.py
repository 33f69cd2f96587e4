"""Affinities alone on the `bench_lsd_affs` label volume (50×100×200, ~90 objects) with the
neighborhood [(1,0,0),(0,1,0),(0,0,1),(3,0,0),(0,9,0),(0,0,9)], one core.

Fast: `dacapo.ops.affinities.affinities` (one pair of overlapping slices per offset, results
written in place into the uint8 output). Naive reference: the straightforward numpy
formula per offset, ``np.roll`` for the partner, an index mask for partners outside the
crop, ``(labels == partner) & (labels != 0) & inside``. Outputs are compared. Goal ≥ 4×.

Run: ``.venv/bin/python benchmarks/bench_affinities.py``.
"""

from __future__ import annotations

import argparse

import numpy as np
from _harness import pin_threads, repeat
from bench_lsd_affs import NBH, SHAPE, make_labels

from dacapo.ops.affinities import affinities


def naive(labels: np.ndarray, neighborhood) -> np.ndarray:
    out = np.zeros((len(neighborhood),) + labels.shape, np.uint8)
    dims = labels.ndim
    for k, o in enumerate(neighborhood):
        partner = np.roll(labels, [-v for v in o], axis=tuple(range(dims)))
        inside = np.ones(labels.shape, bool)
        for axis, v in enumerate(o):
            index = [slice(None)] * dims
            index[axis] = slice(labels.shape[axis] - v, None) if v > 0 else slice(0, -v)
            if v != 0:
                inside[tuple(index)] = False
        out[k] = (labels == partner) & (labels != 0) & inside
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    labels = make_labels()
    mvox = labels.size / 1e6
    fast = repeat(lambda: affinities(labels, NBH), args.repeats)
    ref = repeat(lambda: naive(labels, NBH), args.repeats)
    assert np.array_equal(fast.result, ref.result), "fast and naive affinities differ"
    t_fast, t_naive = fast.min, ref.min
    print(f"input: {SHAPE} {labels.dtype} labels, {len(np.unique(labels)) - 1} objects, "
          f"{len(NBH)} offsets, one core; outputs identical")
    print(f"fast  (ops.affinities):        best of {args.repeats} {t_fast * 1e3:7.2f} ms  "
          f"{mvox / t_fast:8.1f} Mvoxel/s")
    print(f"naive (np.roll + index masks): best of {args.repeats} {t_naive * 1e3:7.2f} ms  "
          f"{mvox / t_naive:8.1f} Mvoxel/s")
    print(f"speed-up: {t_naive / t_fast:.1f}x (goal >= 4x)")


if __name__ == "__main__":
    pin_threads()
    main()
