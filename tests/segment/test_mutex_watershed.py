"""Mutex watershed post-processing: bias sweep, blockwise stitching, determinism (the kernel's
conventions, strides, min size and stitching pairs: tests/ops/test_watershed.py)."""

from __future__ import annotations

import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from dacapo.blockwise import BlockwiseOptions
from dacapo.experiments.tasks.post_processors import (
    WatershedPostProcessor,
    WatershedPostProcessorParameters,
)
from dacapo.ops.instance_metrics import instance_metrics
from dacapo.ops.watershed import mutex_watershed, segment
from tests.references import WATERSHED_OFFSETS as OFFSETS
from tests.references import brute_affinities as loop_affinities
from tests.references import make_labels, watershed_volume
from tests.segment.references import VOXEL, full_voi


def brute_affinities(labels: np.ndarray, offsets) -> np.ndarray:
    """The per-voxel affinity loop of ``test_affinities``, as float32 predictions."""
    return loop_affinities(labels, offsets).astype(np.float32)


@pytest.fixture(scope="module")
def volume():
    return watershed_volume()


@pytest.mark.parametrize("dims", [2, 3])
def test_bias_sweep_recovers_labels(volume, tmp_path, dims):
    """Synthetic affinities of a known label volume: the post-processor's sweep holds a
    segmentation equal to the labels (background included); every bias is deterministic."""
    labels, affs, noisy = volume
    offsets = OFFSETS
    voxel = VOXEL
    if dims == 2:
        labels, offsets, voxel = labels[16], [o[1:] for o in OFFSETS[1:3] + OFFSETS[4:]], VOXEL[1:]
        affs = brute_affinities(labels, offsets)
    post = WatershedPostProcessor(offsets=offsets)
    post.set_prediction(Array(affs, offset=voxel, voxel_size=voxel))
    vois = []
    for p in post.enumerate_parameters():
        seg = post.process(p, tmp_path / "o.zarr" / str(p.id))
        data = seg.to_ndarray(seg.roi)
        np.testing.assert_array_equal(data, segment(affs, offsets, p.bias))
        vois.append(full_voi(data, labels))
    assert [p.bias for p in post.enumerate_parameters()] == [0.1, 0.25, 0.5, 0.75, 0.9]
    assert min(vois) < 1e-9  # the partition, background included, is recovered exactly
    if dims == 3:  # noisy affinities: objects still recovered, and twice the same
        first = segment(noisy, OFFSETS, 0.5)
        np.testing.assert_array_equal(first, segment(noisy, OFFSETS, 0.5))
        assert instance_metrics(first, labels)["voi"] < 1e-9  # GT background ignored
        assert full_voi(first, labels) > 0.5  # noise fragments in the background ...
        assert full_voi(segment(noisy, OFFSETS, 0.5, min_size=5), labels) < 0.05  # ... go


def test_integer_prediction_is_scaled(volume, tmp_path):
    labels, affs, _ = volume
    post = WatershedPostProcessor(offsets=OFFSETS, biases=[0.5])
    post.set_prediction(Array((affs * 255).astype(np.uint8), offset=(0, 0, 0), voxel_size=VOXEL))
    out = post.process(WatershedPostProcessorParameters(0, bias=0.5), tmp_path / "o.zarr/s")
    assert full_voi(out.to_ndarray(out.roi), labels) < 1e-9


def test_bad_input(tmp_path):
    post = WatershedPostProcessor(offsets=OFFSETS)
    with pytest.raises(ValueError, match="set_prediction"):
        post.process(WatershedPostProcessorParameters(0), tmp_path / "o.zarr/s")
    post.set_prediction(Array(np.zeros((3, 4, 4, 4), np.float32), (0, 0, 0), VOXEL))
    with pytest.raises(ValueError, match="prediction: 3 channel"):
        post.process(WatershedPostProcessorParameters(0), tmp_path / "o.zarr/s")
    post.set_prediction(Array(np.zeros((6, 4, 4), np.float32), (0, 0), (4, 4)))
    with pytest.raises(ValueError, match="prediction: 2 spatial dims"):
        post.process(WatershedPostProcessorParameters(0), tmp_path / "o.zarr/s")
    with pytest.raises(ValueError, match="biases"):
        WatershedPostProcessor(offsets=OFFSETS, biases=[])
    with pytest.raises(ValueError, match="affs: expected shape"):
        mutex_watershed(np.zeros((2, 4, 4)), [(1, 0)], 0.5)


def test_in_memory_array(volume, tmp_path):
    labels, affs, _ = volume
    lsd = np.zeros((10, *labels.shape), np.float32)  # trailing LSD channels are ignored
    array = Array(np.concatenate([affs, lsd]), offset=(80, 40, 40), voxel_size=VOXEL,
                  axis_names=["c^", "z", "y", "x"])
    post = WatershedPostProcessor(offsets=OFFSETS)
    post.set_prediction(array)
    out = post.process(WatershedPostProcessorParameters(0, bias=0.5), tmp_path / "o.zarr/seg")
    seg = out.to_ndarray(out.roi)
    assert seg.dtype == np.uint64 and seg.shape == labels.shape
    assert out.roi == Roi((80, 40, 40), Coordinate(labels.shape) * VOXEL)
    assert full_voi(seg, labels) < 1e-9


def test_blockwise_perfect_with_min_size(volume, tmp_path, write_prediction):
    """2 x 2 x 2 blocks on affinities of known labels: the labels come back exactly, and
    min_size acts on whole stitched objects (objects cut by block faces included)."""
    labels, affs, _ = volume
    sizes = np.bincount(labels.ravel().astype(np.int64))
    cut = int(np.median(sizes[1:][sizes[1:] > 0]))
    expected = np.where(np.isin(labels, np.flatnonzero(sizes < cut)), 0, labels)
    assert 0 < len(np.unique(expected)) - 1 < len(np.unique(labels)) - 1
    post = WatershedPostProcessor(offsets=OFFSETS)
    post.set_prediction(write_prediction(tmp_path / "p.zarr/affs", affs))
    params = WatershedPostProcessorParameters(0, bias=0.5, min_size=cut)
    block = Coordinate(16, 16, 16) * VOXEL
    out = post.process(params, tmp_path / "o.zarr/a", BlockwiseOptions(num_workers=1),
                       block_size=block)
    seg = out.to_ndarray(out.roi)
    assert seg.dtype == np.uint64
    assert full_voi(seg, expected) < 1e-9
    assert full_voi(seg, segment(affs, OFFSETS, 0.5, min_size=cut)) < 1e-9
    assert not list(tmp_path.glob("watershed_*"))  # scratch removed


def test_blockwise_2d(volume, tmp_path, write_prediction):
    """2D, 3 x 3 blocks (the last ones partial), long-range offsets: the labels come back."""
    labels = make_labels(shape=(1, 40, 40), num=6, seed=3)[0]
    offsets = [(1, 0), (0, 1), (0, 3), (-3, 0)]
    affs = brute_affinities(labels, offsets)
    post = WatershedPostProcessor(offsets=offsets)
    post.set_prediction(write_prediction(tmp_path / "p.zarr/affs", affs))
    params = WatershedPostProcessorParameters(0, bias=0.5)
    out = post.process(params, tmp_path / "o.zarr/a", block_size=Coordinate(16, 16) * Coordinate(VOXEL[1:]))
    seg = out.to_ndarray(out.roi)
    assert full_voi(seg, labels) < 1e-9 and full_voi(seg, segment(affs, offsets, 0.5)) < 1e-9
    assert len(np.unique(labels)) > 4


def test_blockwise_noisy_matches_single_block_and_is_deterministic(
        volume, tmp_path, write_prediction):
    """Noisy affinities: 2 x 2 x 2 blocks give the single-block partition (VOI <= 0.01);
    runs with 1 and 2 workers give identical ids."""
    _, _, noisy = volume
    single = segment(noisy, OFFSETS, 0.5)
    post = WatershedPostProcessor(offsets=OFFSETS)
    post.set_prediction(write_prediction(tmp_path / "p.zarr/affs", noisy))
    params = WatershedPostProcessorParameters(0, bias=0.5)
    block = Coordinate(16, 16, 16) * VOXEL
    out1 = post.process(params, tmp_path / "o.zarr/a", BlockwiseOptions(num_workers=1),
                        block_size=block)
    out2 = post.process(params, tmp_path / "o.zarr/b", BlockwiseOptions(num_workers=2),
                        block_size=block)
    seg1 = out1.to_ndarray(out1.roi)
    np.testing.assert_array_equal(seg1, out2.to_ndarray(out2.roi))
    voi = full_voi(seg1, single)
    assert voi <= 0.01, voi
    assert abs(len(np.unique(seg1)) - len(np.unique(single))) <= 2  # object counts


def test_min_size_sweep(volume, tmp_path):
    """A sequence of min sizes is swept with the biases (sizes outermost); on noisy
    affinities the min_size > 0 entries remove the background noise fragments that the
    matching scores count as false positives, as the affinities task's default sweep does."""
    from dacapo.experiments.tasks import AffinitiesTaskConfig

    labels, _, noisy = volume
    post = WatershedPostProcessor(offsets=OFFSETS, biases=[0.25, 0.5], min_size=[0, 5])
    params = list(post.enumerate_parameters())
    assert [(p.id, p.min_size, p.bias) for p in params] == [
        (0, 0, 0.25), (1, 0, 0.5), (2, 5, 0.25), (3, 5, 0.5)
    ]
    post.set_prediction(Array(noisy, offset=VOXEL, voxel_size=VOXEL))
    f1 = {}
    for p in params:
        seg = post.process(p, tmp_path / "o.zarr" / str(p.id))
        data = seg.to_ndarray(seg.roi)
        np.testing.assert_array_equal(data, segment(noisy, OFFSETS, p.bias, min_size=p.min_size))
        f1[p.min_size, p.bias] = instance_metrics(data, labels)["f1"]
    assert f1[5, 0.5] > 0.9 and f1[0, 0.5] < 0.5  # noise fragments only hurt without min_size

    task = AffinitiesTaskConfig(name="a", neighborhood=OFFSETS).build()
    assert sorted({p.min_size for p in task.parameters}) == [0, 100]
    assert len(task.parameters) == 10
    with pytest.raises(ValueError, match="min_size"):
        WatershedPostProcessor(offsets=OFFSETS, min_size=[3, 3])


def test_blockwise_context_larger_than_block_is_refused(tmp_path, write_prediction):
    """Stitching compares direct neighbours only: a context reaching past the next block is
    refused before anything is written."""
    labels = make_labels(shape=(1, 40, 40), num=6, seed=3)[0]
    offsets = [(1, 0), (0, 1), (0, 9)]  # context 18 voxels along x
    post = WatershedPostProcessor(offsets=offsets)
    post.set_prediction(write_prediction(tmp_path / "p.zarr/affs",
                                          brute_affinities(labels, offsets)))
    with pytest.raises(ValueError, match=r"smaller than the context \(2, 18\) voxels along axis 1"):
        post.process(WatershedPostProcessorParameters(0, bias=0.5), tmp_path / "o.zarr/a",
                     block_size=Coordinate(16, 16) * Coordinate(VOXEL[1:]))
    assert not (tmp_path / "o.zarr" / "a").exists()


def test_scratch_arrays_read_whole_or_by_name(tmp_path):
    """The stitching's scratch files: a read of some names returns exactly those arrays,
    equal to the same arrays of a whole read (dtypes, shapes, 0-d arrays kept)."""
    from dacapo.segment.mutex_watershed import _load_arrays, _save_arrays

    rng = np.random.default_rng(0)
    arrays = {"a.ids": rng.integers(0, 255, (3, 4, 5), dtype=np.uint8),
              "a.index": rng.integers(0, 2**40, 7, dtype=np.uint64),
              "b": np.float32(2.5), "c": np.zeros((0, 2), np.int64)}
    path = tmp_path / "x.arrays"
    _save_arrays(path, arrays)
    whole = _load_arrays(path)
    some = _load_arrays(path, ["a.index", "c"])
    assert sorted(some) == ["a.index", "c"] and sorted(whole) == sorted(arrays)
    for name, a in arrays.items():
        for got in [whole[name]] + ([some[name]] if name in some else []):
            assert got.dtype == np.asarray(a).dtype and got.shape == np.shape(a)
            np.testing.assert_array_equal(got, a)
