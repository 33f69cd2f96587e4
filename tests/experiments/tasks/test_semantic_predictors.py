"""Distance / InnerDistance / HotDistance / OneHot predictors: targets and weights against
brute-force references (tests/references.py), layouts, masks and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from dacapo.experiments.architectures import DummyArchitectureConfig
from dacapo.experiments.tasks.predictors import (
    DistancePredictor,
    HotDistancePredictor,
    InnerDistancePredictor,
    OneHotPredictor,
)
from tests.references import (
    brute_boundary_distance,
    brute_inner_distance,
    brute_signed_distance,
    brute_weights,
    random_labels,
)

VOXEL_3D = Coordinate(8, 4, 4)
VOXEL_2D = Coordinate(6, 4)


def _array(data: np.ndarray, voxel_size, offset=None) -> Array:
    dims = len(voxel_size)
    offset = Coordinate(offset or (2 * v for v in voxel_size))
    names = (["c^"] if data.ndim > dims else []) + ["z", "y", "x"][-dims:]
    return Array(data, offset=offset, voxel_size=voxel_size, axis_names=names)


def _brute_knowable(target: np.ndarray, mask: np.ndarray, voxel_size, scale: float) -> np.ndarray:
    """Known iff min(|t|, 0.8) <= tanh(distance to the nearest face of a
    masked-out or out-of-crop voxel / scale); masked-out voxels never."""
    padded = np.pad(mask.astype(bool), 1)
    inner = (slice(1, -1),) * mask.ndim
    edge = brute_boundary_distance(padded, voxel_size)[inner]
    claim = np.minimum(np.abs(target.astype(np.float64)), 0.8)
    return (claim <= np.tanh(edge / scale) + 1e-6) & mask.astype(bool)


# --- DistancePredictor ------------------------------------------------------------------


@pytest.mark.parametrize("voxel_size,shape", [(VOXEL_3D, (7, 9, 8)), (VOXEL_2D, (11, 13))])
@pytest.mark.parametrize("layout", ["channels", "class_ids"])
def test_distance_target_vs_brute_force(voxel_size, shape, layout):
    rng = np.random.default_rng(0)
    ids = random_labels(rng, shape, 2)  # 0 background, 1 and 2 classes
    masks = np.stack([ids == 1, ids == 2]).astype(np.uint8)
    gt = _array(masks if layout == "channels" else ids.astype(np.uint8), voxel_size)
    scale = 10.0
    pred = DistancePredictor(["a", "b"], scale_factor=scale, mask_distances=False)
    target = pred.create_target(gt)
    assert target.data.shape == (2, *shape) and target.dtype == np.float32
    assert target.roi == gt.roi and target.voxel_size == gt.voxel_size
    assert target.axis_names[0] == "c^"
    for c in range(2):
        ref = np.tanh(brute_signed_distance(masks[c], voxel_size) / scale)
        np.testing.assert_allclose(target.data[c], ref, atol=1e-5)


@pytest.mark.parametrize("with_channel_axis", [False, True])
def test_distance_single_channel_with_or_without_channel_axis(with_channel_axis):
    rng = np.random.default_rng(1)
    labels = random_labels(rng, (9, 10), 3).astype(np.uint32)  # instance ids, > 0 inside
    data = labels[None] if with_channel_axis else labels
    gt = _array(data, VOXEL_2D)
    pred = DistancePredictor(["mito"], scale_factor=20.0, mask_distances=False)
    target = pred.create_target(gt)
    ref = np.tanh(brute_signed_distance(labels > 0, VOXEL_2D) / 20.0)
    np.testing.assert_allclose(target.data[0], ref, atol=1e-5)


def test_distance_weight_balanced_masked_and_counts():
    rng = np.random.default_rng(2)
    shape = (6, 8, 9)
    ids = random_labels(rng, shape, 2)
    gt = _array(ids.astype(np.uint8), VOXEL_3D)
    mask_np = (rng.random(shape) < 0.8).astype(np.uint8)
    mask = _array(mask_np, VOXEL_3D)
    pred = DistancePredictor(["a", "b"], scale_factor=10.0, mask_distances=False)
    target = pred.create_target(gt)
    weight, counts = pred.create_weight(gt, target, mask)
    binary = np.stack([ids == 1, ids == 2]).astype(np.int64)
    ref_w, ref_c = brute_weights(binary, mask_np[None], 2, 0.05, 0.95)
    np.testing.assert_allclose(weight.data, ref_w, rtol=1e-6)
    np.testing.assert_array_equal(counts, ref_c)
    assert np.all(np.asarray(weight.data)[:, mask_np == 0] == 0)
    # moving counts: a second batch balances by the accumulated counts
    weight2, counts2 = pred.create_weight(gt, target, mask, counts)
    ref_w2, ref_c2 = brute_weights(binary, mask_np[None], 2, 0.05, 0.95, previous=counts)
    np.testing.assert_allclose(weight2.data, ref_w2, rtol=1e-6)
    np.testing.assert_array_equal(counts2, ref_c2)


@pytest.mark.parametrize("voxel_size,shape", [(VOXEL_3D, (8, 10, 9)), (VOXEL_2D, (14, 12))])
def test_mask_distances_zero_weight_where_unknowable(voxel_size, shape):
    rng = np.random.default_rng(3)
    ids = random_labels(rng, shape, 1)
    mask_np = np.ones(shape, np.uint8)
    mask_np[: shape[0] // 3] = 0  # unlabelled slab
    gt = _array(ids.astype(np.uint8), voxel_size)
    scale = 6.0
    pred = DistancePredictor(["a"], scale_factor=scale, mask_distances=True)
    target = pred.create_target(gt)
    weight, _ = pred.create_weight(gt, target, _array(mask_np, voxel_size))
    balanced, _ = brute_weights(ids[None].astype(np.int64), mask_np[None], 2, 0.05, 0.95)
    known = _brute_knowable(target.data[0], mask_np, voxel_size, scale)
    np.testing.assert_allclose(weight.data[0], balanced[0] * known, rtol=1e-6)
    # the rule bites: masked-in voxels lose their weight near the slab and the crop edge
    assert np.any(~known & (mask_np == 1))
    assert np.all(weight.data[0][mask_np == 0] == 0)
    # without a mask only the crop edge limits what is knowable
    weight, _ = pred.create_weight(gt, target, None)
    full = np.ones(shape, np.uint8)
    known = _brute_knowable(target.data[0], full, voxel_size, scale)
    balanced, _ = brute_weights(ids[None].astype(np.int64), None, 2, 0.05, 0.95)
    np.testing.assert_allclose(weight.data[0], balanced[0] * known, rtol=1e-6)


def test_distance_padding_and_gt_region():
    pred = DistancePredictor(["a"], scale_factor=10.0, mask_distances=True)
    # ceil(2.76 * 10 / s) * s: 8 -> 32, 4 -> 28
    assert pred.padding(VOXEL_3D) == Coordinate(32, 28, 28)
    roi = Roi((80, 40, 40), (160, 80, 80))
    assert pred.gt_region_for_roi(roi, VOXEL_3D) == roi.grow((32, 28, 28), (32, 28, 28))
    # the padding makes every unsaturated target at the output ROI knowable
    assert math.tanh(28 / 10.0) > 0.99
    assert pred.output_array_type.channels == ("a",)


def test_distance_errors_name_the_array():
    pred = DistancePredictor(["a", "b"], scale_factor=1.0, mask_distances=False)
    with pytest.raises(ValueError, match="gt"):
        pred.create_target(_array(np.zeros((3, 5, 6, 7), np.uint8), VOXEL_3D))
    nan_gt = np.zeros((5, 6, 7), np.float32)
    nan_gt[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="gt: contains NaN"):
        pred.create_target(_array(nan_gt, VOXEL_3D))
    gt = _array(np.zeros((5, 6, 7), np.uint8), VOXEL_3D)
    target = pred.create_target(gt)
    with pytest.raises(ValueError, match="mask"):
        pred.create_weight(gt, target, _array(np.ones((5, 6, 7)), VOXEL_3D, offset=(0, 0, 0)))
    with pytest.raises(ValueError, match="mask"):
        pred.create_weight(gt, target, _array(np.ones((3, 5, 6, 7)), VOXEL_3D))
    with pytest.raises(ValueError, match="scale_factor"):
        DistancePredictor(["a"], scale_factor=0, mask_distances=False)


# --- InnerDistancePredictor -------------------------------------------------------------


@pytest.mark.parametrize("voxel_size,shape", [(VOXEL_3D, (7, 8, 9)), (VOXEL_2D, (12, 11))])
def test_inner_distance_target_and_weight(voxel_size, shape):
    rng = np.random.default_rng(4)
    labels = random_labels(rng, shape, 6).astype(np.uint64)  # touching instances
    gt = _array(labels, voxel_size)
    pred = InnerDistancePredictor(["cells"], scale_factor=12.0)
    target = pred.create_target(gt)
    ref = np.tanh(brute_inner_distance(labels, voxel_size) / 12.0)
    np.testing.assert_allclose(target.data[0], ref, atol=1e-5)
    mask_np = (rng.random(shape) < 0.7).astype(np.uint8)
    weight, counts = pred.create_weight(gt, target, _array(mask_np, voxel_size))
    ref_w, ref_c = brute_weights((labels != 0)[None].astype(np.int64), mask_np[None], 2, 0.05, 0.95)
    np.testing.assert_allclose(weight.data, ref_w, rtol=1e-6)
    np.testing.assert_array_equal(counts, ref_c)


def test_inner_distance_touching_instances_separate_after_threshold():
    labels = np.zeros((10, 12), np.uint16)
    labels[2:8, 1:6] = 3
    labels[2:8, 6:11] = 4  # touching along x
    gt = _array(labels, Coordinate(4, 4))
    target = InnerDistancePredictor(["c"], scale_factor=4.0).create_target(gt).data[0]
    # the two voxels at the common face are 2 nm from the boundary: tanh(0.5)
    np.testing.assert_allclose(target[4, 5:7], np.tanh(0.5), rtol=1e-6)
    # above that threshold the two objects are no longer connected along x
    inside = target > np.tanh(0.5) + 1e-3
    assert not np.any(inside[:, 5]) and not np.any(inside[:, 6])
    assert inside[:, 1:5].any() and inside[:, 7:11].any()


@pytest.mark.parametrize("with_channel_axis", [False, True])
def test_inner_distance_2d_nuclei_on_background(with_channel_axis):
    # lm_nuclei_2d-like GT: instance ids of touching discs on background 0, 240 nm pixels
    yy, xx = np.mgrid[:24, :30]
    labels = np.zeros((24, 30), np.uint16)
    for i, (cy, cx, r) in enumerate([(8, 8, 5), (8, 17, 5), (17, 22, 4)], start=1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = i  # discs 1 and 2 touch
    voxel = Coordinate(240, 240)
    gt = _array(labels[None] if with_channel_axis else labels, voxel)
    pred = InnerDistancePredictor(["nucleus"], scale_factor=720.0)
    target = pred.create_target(gt)
    t = target.data[0]
    np.testing.assert_allclose(t, np.tanh(brute_inner_distance(labels, voxel) / 720.0), atol=1e-6)
    assert np.all(t[labels == 0] == 0)  # background is no object: 0, never a distance
    assert t[labels > 0].min() == pytest.approx(np.tanh(120 / 720), rel=1e-6)  # rim: s/2
    weight, _ = pred.create_weight(gt, target)
    fg = np.mean(labels > 0)
    np.testing.assert_allclose(weight.data[0][labels > 0], 1 / (2 * fg), rtol=1e-6)
    np.testing.assert_allclose(weight.data[0][labels == 0], 1 / (2 * (1 - fg)), rtol=1e-6)


def test_inner_distance_rejects_fractional_labels():
    gt = _array(np.full((4, 5), 0.5, np.float32), VOXEL_2D)
    with pytest.raises(ValueError, match="gt"):
        InnerDistancePredictor(["c"], scale_factor=1.0).create_target(gt)


# --- HotDistancePredictor ---------------------------------------------------------------


@pytest.mark.parametrize("voxel_size,shape", [(VOXEL_3D, (7, 9, 8)), (VOXEL_2D, (13, 12))])
def test_hot_distance_2c_channels_in_documented_order(voxel_size, shape):
    rng = np.random.default_rng(5)
    ids = random_labels(rng, shape, 2)
    masks = np.stack([ids == 1, ids == 2])
    gt = _array(masks.astype(np.uint8), voxel_size)
    mask_np = np.ones(shape, np.uint8)
    mask_np[-2:] = 0
    mask = _array(mask_np, voxel_size)
    hot = HotDistancePredictor(["a", "b"], scale_factor=8.0, mask_distances=True)
    dist = DistancePredictor(["a", "b"], scale_factor=8.0, mask_distances=True)
    target = hot.create_target(gt)
    assert target.data.shape == (4, *shape)
    # [inside_a, inside_b, dist_a, dist_b]
    np.testing.assert_array_equal(target.data[:2], masks.astype(np.float32))
    for c in range(2):
        ref = np.tanh(brute_signed_distance(masks[c], voxel_size) / 8.0)
        np.testing.assert_allclose(target.data[2 + c], ref, atol=1e-5)
    weight, counts = hot.create_weight(gt, target, mask)
    d_target = dist.create_target(gt)
    d_weight, d_counts = dist.create_weight(gt, d_target, mask)
    balanced, _ = brute_weights(masks.astype(np.int64), mask_np[None], 2, 0.05, 0.95)
    np.testing.assert_allclose(weight.data[:2], balanced, rtol=1e-6)
    np.testing.assert_allclose(weight.data[2:], d_weight.data, rtol=1e-6)
    np.testing.assert_array_equal(counts, d_counts)  # counted once, shape (C, 2)
    assert hot.num_output_channels == 4 and hot.channels == ["a", "b"]
    assert hot.output_array_type.channels == ("a_probability", "b_probability", "a", "b")


def test_hot_distance_model_sigmoid_on_first_half_in_eval():
    hot = HotDistancePredictor(["a", "b"], scale_factor=1.0, mask_distances=False)
    arch = DummyArchitectureConfig(name="d", num_out_channels=3, input_shape=(6, 7))
    model = hot.create_model(arch)
    x = torch.randn(1, 1, 6, 7)
    model.train()
    logits = model(x)
    model.eval()
    out = model(x)
    assert out.shape == (1, 4, 6, 7)
    torch.testing.assert_close(out[:, :2], torch.sigmoid(logits[:, :2]))
    torch.testing.assert_close(out[:, 2:], logits[:, 2:])


# --- OneHotPredictor --------------------------------------------------------------------


@pytest.mark.parametrize("voxel_size,shape", [(VOXEL_3D, (5, 6, 7)), (VOXEL_2D, (9, 8))])
@pytest.mark.parametrize("with_channel_axis", [False, True])
def test_one_hot_target_and_class_balanced_weight(voxel_size, shape, with_channel_axis):
    rng = np.random.default_rng(6)
    ids = rng.choice(3, size=shape, p=[0.6, 0.3, 0.1]).astype(np.uint8)
    gt = _array(ids[None] if with_channel_axis else ids, voxel_size)
    mask_np = (rng.random(shape) < 0.75).astype(np.uint8)
    pred = OneHotPredictor(["bg", "a", "b"])
    target = pred.create_target(gt)
    for k in range(3):
        np.testing.assert_array_equal(target.data[k], (ids == k).astype(np.float32))
    weight, counts = pred.create_weight(gt, target, _array(mask_np, voxel_size))
    assert weight.data.shape == (3, *shape)
    ref_w, ref_c = brute_weights(ids[None].astype(np.int64), mask_np[None], 3, 0.05, 0.95)
    for k in range(3):
        np.testing.assert_allclose(weight.data[k], ref_w[0], rtol=1e-6)
    np.testing.assert_array_equal(counts, ref_c)
    # not all ones: every class gets the same total weight within the mask
    w = weight.data[0]
    totals = [w[(mask_np == 1) & (ids == k)].sum() for k in range(3)]
    np.testing.assert_allclose(totals, [mask_np.sum() / 3] * 3, rtol=1e-4)
    assert np.all(w[mask_np == 0] == 0)


def test_one_hot_unbalanced_weight_is_the_mask():
    """balance=False: weight 1 inside the mask, 0 outside, on every channel; the class
    counts are the balanced predictor's (still accumulated)."""
    rng = np.random.default_rng(7)
    ids = rng.choice(2, size=(6, 7), p=[0.8, 0.2]).astype(np.uint8)
    mask_np = (rng.random((6, 7)) < 0.6).astype(np.uint8)
    gt, mask = _array(ids, VOXEL_2D), _array(mask_np, VOXEL_2D)
    plain = OneHotPredictor(["bg", "fg"], balance=False)
    weight, counts = plain.create_weight(gt, plain.create_target(gt), mask)
    for k in range(2):
        np.testing.assert_array_equal(weight.data[k], mask_np.astype(np.float32))
    _, balanced_counts = OneHotPredictor(["bg", "fg"]).create_weight(gt, plain.create_target(gt), mask)
    np.testing.assert_array_equal(counts, balanced_counts)
    weight, _ = plain.create_weight(gt, plain.create_target(gt))  # no mask: all ones
    np.testing.assert_array_equal(weight.data, np.ones((2, 6, 7), np.float32))


def test_one_hot_errors():
    pred = OneHotPredictor(["bg", "a"])
    with pytest.raises(ValueError, match="gt: class ids"):
        pred.create_target(_array(np.full((4, 5), 2, np.uint8), VOXEL_2D))
    with pytest.raises(ValueError, match="gt"):
        pred.create_target(_array(np.zeros((2, 4, 5), np.uint8), VOXEL_2D))
    with pytest.raises(ValueError, match="gt"):
        pred.create_target(_array(np.full((4, 5), np.nan, np.float32), VOXEL_2D))
