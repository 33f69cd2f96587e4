"""Pyramids: downsampling kernels against brute-force twins, levels of `downsample_image`
against a numpy reference chain, metadata through an independent reader, kill + re-run."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import zarr
from funlib.geometry import Coordinate, Roi
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader
from ome_zarr_models.v05.image import Image

from dacapo.io.ome_write import open_ds, prepare_ome
from dacapo.ops.downsample import downsample, downsample_mean, downsample_mode, pyramid_factors
from dacapo.tools.pyramid import downsample_image, plan_levels


def _blocks(shape, factors):
    """Every output index with the input slices of its block."""
    out = [s // f for s, f in zip(shape, factors)]
    for j in itertools.product(*(range(o) for o in out)):
        yield j, tuple(slice(i * f, (i + 1) * f) for i, f in zip(j, factors))


def mean_twin(data, factors):
    dims = len(factors)
    lead = data.shape[: data.ndim - dims]
    out = np.zeros(lead + tuple(s // f for s, f in zip(data.shape[-dims:], factors)))
    for j, block in _blocks(data.shape[-dims:], factors):
        for c in itertools.product(*(range(n) for n in lead)):
            out[c + j] = np.mean(data[c + block].astype(np.float64))
    if np.issubdtype(data.dtype, np.integer):
        return np.round(out).astype(data.dtype)  # np.round: half to even
    return out.astype(data.dtype)


def mode_twin(labels, factors):
    out = np.zeros(tuple(s // f for s, f in zip(labels.shape, factors)), labels.dtype)
    for j, block in _blocks(labels.shape, factors):
        counts = Counter(labels[block].ravel().tolist())
        top = max(counts.values())
        out[j] = min(v for v, n in counts.items() if n == top)
    return out


@pytest.mark.parametrize("shape,factors", [((6, 8), (2, 2)), ((2, 4, 6, 8), (1, 2, 2)),
                                           ((6, 4, 6), (3, 2, 1))])
def test_mean_equals_its_brute_force_twin(shape, factors):
    rng = np.random.default_rng(0)
    floats = rng.normal(size=shape).astype(np.float32)
    np.testing.assert_allclose(downsample_mean(floats, factors), mean_twin(floats, factors),
                               rtol=1e-6)
    ints = rng.integers(0, 256, size=shape).astype(np.uint8)
    np.testing.assert_array_equal(downsample_mean(ints, factors), mean_twin(ints, factors))


def test_mean_hand_computed():
    x = np.array([[0, 1, 4, 4], [2, 2, 4, 5]], np.uint8)  # means 1.25 and 4.25
    assert downsample_mean(x, (2, 2)).tolist() == [[1, 4]]
    assert downsample_mean(np.array([[1, 2], [2, 2]], np.uint8), (2, 2)).tolist() == [[2]]
    assert downsample_mean(np.array([[0.5, 1.5]], np.float32), (1, 2)).tolist() == [[1.0]]


@pytest.mark.parametrize("shape,factors", [((8, 6), (2, 2)), ((4, 6, 8), (2, 2, 2)),
                                           ((3, 6, 6), (1, 3, 2))])
def test_mode_equals_its_brute_force_twin(shape, factors):
    labels = np.random.default_rng(1).integers(0, 3, size=shape).astype(np.uint64)
    np.testing.assert_array_equal(downsample_mode(labels, factors), mode_twin(labels, factors))


def test_mode_hand_computed_and_stride():
    x = np.array([[3, 3, 1, 2], [3, 0, 2, 1]], np.uint32)
    assert downsample_mode(x, (2, 2)).tolist() == [[3, 1]]  # 3 wins; 1/2 tie -> smaller
    assert downsample(x, (2, 2), "stride").tolist() == [[3, 1]]
    with pytest.raises(ValueError, match="multiple"):
        downsample_mode(x, (2, 3))


def test_factors_are_anisotropy_aware():
    assert pyramid_factors((40, 8, 8)) == (1, 2, 2)
    assert pyramid_factors((40, 32, 32)) == (1, 2, 2)  # z still coarser than y/x
    assert pyramid_factors((40, 64, 64)) == (2, 1, 1)
    assert pyramid_factors((8, 8, 8)) == (2, 2, 2)
    assert pyramid_factors((4, 6)) == (2, 1)
    plan = plan_levels(Roi((0, 0, 0), (40 * 8, 8 * 512, 8 * 512)), Coordinate(40, 8, 8))
    sizes = [tuple(vs) for _, vs, _ in plan]
    assert sizes == [(40, 16, 16), (40, 32, 32), (40, 64, 64)]  # until <= 64 voxels per axis


def _reference_chain(data, roi, voxel_size, method, levels):
    """(voxel size, ROI, data) of each level by numpy: crop the previous level to the new
    ROI (snapped inward to the new voxel grid), then the brute-force twin."""
    out = []
    for _ in range(levels):
        factors = pyramid_factors(voxel_size)
        new_vs = Coordinate(voxel_size) * Coordinate(factors)
        begin = Coordinate(-(-b // v) * v for b, v in zip(roi.begin, new_vs))
        end = Coordinate((e // v) * v for e, v in zip(roi.end, new_vs))
        new_roi = Roi(begin, end - begin)
        crop = ((new_roi - roi.offset) / voxel_size).to_slices()
        part = data[(Ellipsis, *crop)]
        data = mean_twin(part, factors) if method == "mean" else mode_twin(part, factors)
        roi, voxel_size = new_roi, new_vs
        out.append((new_vs, new_roi, data))
    return out


def _image(path, data, roi, voxel_size, label, write_voxels):
    channels = data.shape[0] if data.ndim > voxel_size.dims else None
    out = prepare_ome(path, roi, voxel_size, data.dtype, num_channels=channels,
                         write_size=Coordinate(write_voxels) * voxel_size, label=label)
    out[roi] = data


@pytest.mark.parametrize("kind", ["intensities_3d", "labels_2d"])
def test_levels_equal_a_numpy_reference(tmp_path, kind):
    rng = np.random.default_rng(3)
    if kind == "intensities_3d":
        voxel_size, offset = Coordinate(20, 8, 8), Coordinate(20, 8, 24)
        data = rng.random((2, 6, 18, 20), dtype=np.float32)
        method, label, write, levels = "mean", False, (6, 8, 8), 2
    else:
        voxel_size, offset = Coordinate(4, 4), Coordinate(12, 4)
        data = rng.integers(0, 4, (21, 26)).astype(np.uint32)
        method, label, write, levels = "mode", True, (8, 8), 1
    roi = Roi(offset, Coordinate(data.shape[-voxel_size.dims:]) * voxel_size)
    path = tmp_path / "p.zarr" / "image"
    _image(path, data, roi, voxel_size, label, write)
    names = downsample_image(path, levels=levels)
    assert names == ["s0", "s1", "s2"][: levels + 1]
    reference = _reference_chain(data, roi, voxel_size, method, levels)
    node = next(iter(Reader(parse_url(str(path)))()))
    Image.from_zarr(zarr.open_group(str(path), mode="r"))  # valid 0.5 metadata
    transforms = node.metadata["coordinateTransformations"]
    lead = [1.0] if data.ndim > voxel_size.dims else []
    zero = [0.0] if lead else []
    for level, (vs, level_roi, expected) in enumerate(reference, start=1):
        array = open_ds(path, level=level)
        assert array.voxel_size == vs and array.roi == level_roi
        scale = next(t["scale"] for t in transforms[level] if t["type"] == "scale")
        translation = next(t["translation"] for t in transforms[level] if t["type"] == "translation")
        assert scale == lead + [float(v) for v in vs]
        assert translation == zero + [float(v) for v in level_roi.offset]
        got = np.asarray(node.data[level])
        if method == "mean":
            np.testing.assert_allclose(got, expected, rtol=1e-6)
        else:
            np.testing.assert_array_equal(got, expected)


def _done(task_dir: Path) -> set[str]:
    done = task_dir / "done"
    return {p.name for p in done.iterdir() if not p.name.startswith(".")} if done.exists() else set()


def test_killed_pyramid_job_reruns_to_identical_levels(tmp_path):
    rng = np.random.default_rng(4)
    voxel_size = Coordinate(8, 8, 8)
    data = rng.integers(0, 256, (16, 64, 64)).astype(np.uint8)
    roi = Roi((0, 0, 0), Coordinate(data.shape) * voxel_size)
    path = tmp_path / "k.zarr" / "raw"
    _image(path, data, roi, voxel_size, False, (4, 4, 4))  # s1: 2*8*8 = 128 blocks
    task_dir = tmp_path / "k.zarr.blockwise" / "raw" / "s1" / "downsample_s1"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, "-m", "dacapo.cli", "downsample", str(path),
                             "--levels", "2"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(_done(task_dir)) < 5 and proc.poll() is None:
        assert time.monotonic() < deadline, "the downsample job made no progress"
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = _done(task_dir)
    assert 5 <= len(done) < 128, f"killed too late ({len(done)} blocks done)"
    from dacapo.io.ome_write import level_paths

    assert level_paths(path) == ["s0"]  # an unfinished level is not listed
    assert downsample_image(path, levels=2) == ["s0", "s1", "s2"]
    # identical to an uninterrupted run: the numpy reference chain, bit for bit (uint8 means
    # rounded half to even in both)
    reference = _reference_chain(data, roi, voxel_size, "mean", 2)
    for name, (_, _, expected) in zip(("s1", "s2"), reference):
        np.testing.assert_array_equal(zarr.open_array(str(path / name))[:], expected)


def test_downsample_twice_keeps_the_levels_ordered_and_equal(tmp_path):
    """A re-run of ``dacapo downsample`` on an image that already has its levels (a
    newcomer's second try) re-lists them in place, finest first, with the same data; it
    used to move s1 behind s2 and fail OME-NGFF validation."""
    rng = np.random.default_rng(7)
    voxel_size = Coordinate(4, 4)
    data = rng.integers(0, 4, (40, 48)).astype(np.uint32)
    roi = Roi((0, 0), Coordinate(data.shape) * voxel_size)
    path = tmp_path / "p.zarr" / "image"
    _image(path, data, roi, voxel_size, True, (8, 8))
    first = downsample_image(path, levels=2)
    before = [np.asarray(open_ds(path, level=i)[open_ds(path, level=i).roi]) for i in (1, 2)]
    second = downsample_image(path, levels=2)
    assert first == second == ["s0", "s1", "s2"]
    Image.from_zarr(zarr.open_group(str(path), mode="r"))  # valid 0.5 metadata
    datasets = zarr.open_group(str(path), mode="r").attrs["ome"]["multiscales"][0]["datasets"]
    scales = [next(t["scale"] for t in d["coordinateTransformations"] if t["type"] == "scale")
              for d in datasets]
    assert [d["path"] for d in datasets] == ["s0", "s1", "s2"]
    assert scales == sorted(scales)
    for i, b in zip((1, 2), before):
        a = open_ds(path, level=i)
        np.testing.assert_array_equal(np.asarray(a[a.roi]), b)
