"""BinarySegmentationEvaluator on funlib Arrays: world units for anisotropic voxels (hand
computed), scores keyed by channel name, empty-mask conventions, ROI handling, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from funlib.geometry import Coordinate
from funlib.persistence import Array, prepare_ds

from dacapo.experiments.tasks.evaluators import BinarySegmentationEvaluator
from dacapo.ops.binary_metrics import BINARY_METRIC_NAMES
from tests.references import brute_binary_metrics as reference

VOXEL = Coordinate(8, 4, 4)


def _array(data: np.ndarray, voxel_size=VOXEL, offset=None) -> Array:
    dims = len(voxel_size)
    names = (["c^"] if data.ndim > dims else []) + ["z", "y", "x"][-dims:]
    offset = offset if offset is not None else Coordinate(voxel_size) * 2
    return Array(data, offset=offset, voxel_size=voxel_size, axis_names=names)


def test_shift_along_z_with_anisotropic_voxels_by_hand():
    """A 3x4x4 box shifted by one voxel along z (8 nm) and another by one along x (4 nm):
    each false voxel is one voxel step from the other mask."""
    truth = np.zeros((2, 8, 10, 10), np.uint8)
    truth[:, 2:5, 3:7, 3:7] = 1
    test = np.stack([np.roll(truth[0], 1, axis=0), np.roll(truth[1], 1, axis=2)])
    evaluator = BinarySegmentationEvaluator(clip_distance=6.0, tol_distance=4.0, channels=["mito", "er"])
    scores = evaluator.evaluate(_array(test), _array(truth))
    # |S| = |T| = 48; z shift: FP = FN = 16 (a 4x4 face), 8 nm from the other mask;
    # x shift: FP = FN = 12 (a 3x4 face), 4 nm away
    assert scores.mito__hausdorff == 8.0
    assert scores.er__hausdorff == 4.0
    assert scores.mito__mean_false_positive_distance == pytest.approx(16 * 8 / 48)
    assert scores.mito__mean_false_distance == pytest.approx(16 * 8 / 48)
    assert scores.er__mean_false_negative_distance == pytest.approx(12 * 4 / 48)
    assert scores.mito__mean_false_distance_clipped == pytest.approx(16 * 6 / 48)
    assert scores.er__mean_false_distance_clipped == pytest.approx(12 * 4 / 48)
    assert scores.er__dice == pytest.approx(2 * 36 / 96)
    assert scores.mito__dice == pytest.approx(2 * 32 / 96)
    # tolerance 4 nm: the z-shifted voxels (8 nm) are errors, the x-shifted ones (4 nm) not
    assert scores.mito__false_negative_rate_with_tolerance == pytest.approx(16 / 48)
    assert scores.mito__false_positive_rate_with_tolerance == pytest.approx(16 / (800 - 48))
    assert scores.er__false_negative_rate_with_tolerance == 0.0
    assert scores.er__f1_score_with_tolerance == 1.0
    # keyed by channel name
    assert scores.criteria == [f"{c}__{m}" for c in ("mito", "er") for m in BINARY_METRIC_NAMES]
    assert scores["er__dice"] == scores.er__dice


@pytest.mark.parametrize("seed", range(3))
def test_every_metric_vs_brute_force_per_channel(seed):
    rng = np.random.default_rng(seed)
    shape, voxel = (5, 7, 6), Coordinate(50, 4, 4)
    test = rng.random((3, *shape)) < 0.3
    truth = rng.random((3, *shape)) < 0.4
    evaluator = BinarySegmentationEvaluator(clip_distance=20.0, tol_distance=6.0, channels=["a", "b", "c"])
    scores = evaluator.evaluate(_array(test.astype(np.uint8), voxel), _array(truth.astype(np.uint8), voxel))
    for i, name in enumerate(["a", "b", "c"]):
        ref = reference(test[i], truth[i], tuple(voxel), 6.0, 20.0)
        for metric in BINARY_METRIC_NAMES:
            got = getattr(scores, f"{name}__{metric}")
            assert got == pytest.approx(ref[metric], rel=1e-5, abs=1e-6) or (
                math.isnan(got) and math.isnan(ref[metric])
            ), metric


def test_empty_masks_through_the_evaluator():
    truth = np.zeros((2, 4, 5, 6), np.uint8)
    test = np.zeros_like(truth)
    truth[1, 1:3, 1:3, 1:3] = 1  # channel "b": truth only
    scores = BinarySegmentationEvaluator(5.0, 1.0, ["a", "b"]).evaluate(_array(test), _array(truth))
    # both empty: hausdorff 0, everything else NaN
    assert scores.a__hausdorff == 0.0
    assert all(math.isnan(getattr(scores, f"a__{m}")) for m in BINARY_METRIC_NAMES if m != "hausdorff")
    # one empty: dice = jaccard = 0, hausdorff and the rest NaN
    assert scores.b__dice == 0.0 and scores.b__jaccard == 0.0
    assert math.isnan(scores.b__hausdorff) and math.isnan(scores.b__recall)


def test_class_id_gt_and_single_channel_without_axis():
    ids = np.zeros((6, 7, 8), np.uint8)
    ids[1:3, 1:4, 1:5] = 1
    ids[4:6, 2:6, 3:7] = 2
    test = np.stack([ids == 1, ids == 2]).astype(np.uint8)
    scores = BinarySegmentationEvaluator(5.0, 1.0, ["one", "two"]).evaluate(_array(test), _array(ids))
    assert scores.one__dice == 1.0 and scores.two__dice == 1.0 and scores.two__hausdorff == 0.0
    single = BinarySegmentationEvaluator(5.0, 1.0, ["fg"]).evaluate(_array(ids == 1), _array(ids == 1))
    assert single.fg__jaccard == 1.0


def test_output_inside_larger_gt_is_scored_on_the_output_roi(tmp_path):
    rng = np.random.default_rng(4)
    truth = (rng.random((10, 12, 12)) < 0.5).astype(np.uint8)
    inner = (slice(2, 8), slice(3, 9), slice(1, 11))
    test = (rng.random(truth[inner].shape) < 0.5).astype(np.uint8)
    gt = _array(truth, offset=Coordinate(0, 0, 0))
    offset = Coordinate(2, 3, 1) * VOXEL
    # the output as a zarr path (what the blockwise post-processor writes)
    out = prepare_ds(
        str(tmp_path / "o.zarr" / "seg"), test.shape, offset=offset, voxel_size=VOXEL,
        axis_names=["z", "y", "x"], dtype=np.uint8, mode="w",
    )
    out[out.roi] = test
    scores = BinarySegmentationEvaluator(30.0, 4.0, ["x"]).evaluate(str(tmp_path / "o.zarr" / "seg"), gt)
    ref = reference(test, truth[inner], tuple(VOXEL), 4.0, 30.0)
    assert scores.x__mean_false_distance == pytest.approx(ref["mean_false_distance"])
    assert scores.x__voi == pytest.approx(ref["voi"])


def test_errors_name_the_arrays():
    ev = BinarySegmentationEvaluator(5.0, 1.0, ["a", "b"])
    gt = _array(np.zeros((2, 4, 5, 6), np.uint8))
    with pytest.raises(ValueError, match="output array"):
        ev.evaluate(_array(np.zeros((3, 4, 5, 6), np.uint8)), gt)
    with pytest.raises(ValueError, match="voxel size"):
        ev.evaluate(_array(np.zeros((2, 4, 5, 6), np.uint8), Coordinate(4, 4, 4)), gt)
    with pytest.raises(ValueError, match="ROI"):
        ev.evaluate(_array(np.zeros((2, 4, 5, 6), np.uint8), offset=Coordinate(8, 8, 8)), gt)
