"""Partial annotations in the task layer: a crop never teaches the model that a class it did
not annotate is absent.

- OneHot (`PartialOneHotPredictor` + `WeightedCrossEntropyLoss`, or + `CrossEntropyDiceLoss`): where a voxel's class is
  unknown, the loss is the marginal likelihood of the unannotated classes; checked against a
  numpy transcription of its formula, and on a tiny model with autograd: the logit of an
  unannotated class is never pushed down there (its gradient is <= 0, where the naive
  "unknown = background" pushes it down), and moving probability among the unannotated
  classes changes nothing (their probability gradients are equal: zero along any such move).
- Distance / HotDistance (`PartialChannelsPredictor`): the channel of an unannotated class
  gets weight 0, so the gradient of its logit is exactly zero in the whole crop.
- A fully annotated crop is the plain predictor; one unannotated class is the same as
  annotating it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from funlib.persistence import Array

from dacapo.experiments.tasks.losses import (
    CrossEntropyDiceLoss,
    HotDistanceLoss,
    MSELoss,
    WeightedCrossEntropyLoss,
)
from dacapo.experiments.tasks.predictors import (
    DistancePredictor,
    HotDistancePredictor,
    OneHotPredictor,
)
from dacapo.experiments.tasks.predictors.distance_predictor import PartialChannelsPredictor
from dacapo.experiments.tasks.predictors.one_hot_predictor import PartialOneHotPredictor
from dacapo.experiments.tasks.predictors.predictor import Annotation

CLASSES = ["background", "membrane", "mito", "synapse"]
VS = (2, 1, 1)
SHAPE = (4, 6, 6)


def _gt(data: np.ndarray) -> Array:
    return Array(data, offset=(0, 0, 0), voxel_size=VS)


def _class_ids(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, len(CLASSES), SHAPE).astype(np.uint8)


def _tiny_model(out_channels: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(4, out_channels, 1)
    ).double()


def _logits_and_grad(model, loss, target: Array, weight: Array):
    """The logits of ``model`` on a fixed input and the gradient of ``loss`` w.r.t. them."""
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(1, 1, *SHAPE)))
    logits = model(x)
    logits.retain_grad()
    t = torch.from_numpy(np.asarray(target.data, np.float64)[None])
    w = torch.from_numpy(np.asarray(weight.data, np.float64)[None])
    loss.compute(logits, t, w).backward()
    return logits.detach()[0].numpy(), logits.grad[0].numpy()


# --- the marginal loss ----------------------------------------------------------------


def _marginal_loss_reference(z: np.ndarray, t: np.ndarray, w: np.ndarray) -> float:
    """Per voxel: p = softmax(z); P = {c: t_c = 1}; |P| >= 2: l = -log sum_{c in P} p_c and
    w = sum_c w_c t_c / |P|; else l = -sum_c t_c log p_c and w = sum_c w_c t_c; mean w·l."""
    b, c = z.shape[:2]
    z2 = z.reshape(b, c, -1)
    t2 = t.reshape(b, c, -1)
    w2 = w.reshape(b, c, -1)
    total, n = 0.0, 0
    for i in range(b):
        for v in range(z2.shape[2]):
            e = np.exp(z2[i, :, v] - z2[i, :, v].max())
            p = e / e.sum()
            tv, wv = t2[i, :, v], w2[i, :, v]
            if tv.sum() > 1.5:
                loss = -np.log(p[tv > 0].sum())
                weight = (wv * tv).sum() / tv.sum()
            else:
                loss = -(tv * np.log(p)).sum()
                weight = (wv * tv).sum()
            total += weight * loss
            n += 1
    return total / n


def test_marginal_loss_equals_its_formula():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2, 4, 3, 5)) * 3
    classes = rng.integers(0, 4, (2, 3, 5))
    t = (classes[:, None] == np.arange(4)[None, :, None, None]).astype(np.float64)
    sets = rng.random((2, 3, 5)) < 0.5  # these voxels: one of classes {1, 3} or {0, 2, 3}
    group = np.where(rng.random((2, 3, 5)) < 0.5, 1, 0)
    for c in range(4):
        in_set = np.where(group == 1, c in (1, 3), c in (0, 2, 3))
        t[:, c] = np.where(sets, in_set, t[:, c])
    t[0, :, 0, 0] = 0  # an ignored voxel (no possible class, weight 0)
    w = np.repeat(rng.random((2, 1, 3, 5)) + 0.5, 4, axis=1)
    w[0, :, 0, 0] = 0
    got = WeightedCrossEntropyLoss().compute(
        torch.from_numpy(z), torch.from_numpy(t), torch.from_numpy(w))
    assert got.item() == pytest.approx(_marginal_loss_reference(z, t, w), rel=1e-10)
    # one-hot targets: exactly the weighted cross-entropy of before
    t1 = (classes[:, None] == np.arange(4)[None, :, None, None]).astype(np.float64)
    pt, tt, wt = torch.from_numpy(z), torch.from_numpy(t1), torch.from_numpy(w)
    before = ((wt * tt).sum(dim=1) * -(tt * torch.log_softmax(pt, dim=1)).sum(dim=1)).mean()
    assert torch.equal(WeightedCrossEntropyLoss().compute(pt, tt, wt), before)


def test_marginal_loss_gradients_are_finite_where_voxels_are_ignored():
    z = torch.zeros((1, 3, 2, 2), dtype=torch.float64, requires_grad=True)
    t = torch.zeros((1, 3, 2, 2), dtype=torch.float64)
    t[0, :2, 0, 0] = 1  # a set
    t[0, 2, 0, 1] = 1  # a class; the other two voxels have no class at all
    WeightedCrossEntropyLoss().compute(z, t, torch.ones_like(t)).backward()
    assert torch.isfinite(z.grad).all()


# --- OneHot ---------------------------------------------------------------------------


def test_one_hot_unknown_voxels_may_be_any_unannotated_class():
    ids = _class_ids()
    full = OneHotPredictor(CLASSES)
    partial = full.for_crop(["mito", "synapse"])
    assert isinstance(partial, PartialOneHotPredictor)
    target = np.asarray(partial.create_target(_gt(ids)).data)
    known = np.isin(ids, [2, 3])
    assert np.array_equal(target[:, known], np.asarray(full.create_target(_gt(ids)).data)[:, known])
    # unknown: background or membrane, never mito or synapse
    assert np.all(target[:2, ~known] == 1) and np.all(target[2:, ~known] == 0)
    weight, counts = partial.create_weight(_gt(ids), None)
    weight = np.asarray(weight.data)
    # counts per known class plus one column of unknown voxels ({background, membrane})
    n = [0, 0, int((ids == 2).sum()), int((ids == 3).sum()), int((~known).sum())]
    assert counts.tolist() == [n]
    # fractions over all voxels (hand-computed), unknown voxels weigh as one class
    f = np.clip(np.array(n) / ids.size, 0.05, 0.95)
    assert np.allclose(weight[:, ~known], 1 / (4 * f[4]))
    assert np.allclose(weight[0][known], 1 / (4 * f[ids[known]]))
    # the next crop, fully annotated, keeps the unknown column in its fractions
    weight2, counts2 = full.create_weight(_gt(ids), None, None, counts)
    n2 = np.array(n) + np.array([int((ids == k).sum()) for k in range(4)] + [0])
    assert counts2.tolist() == [n2.tolist()]
    f2 = np.clip(n2 / n2.sum(), 0.05, 0.95)
    assert np.allclose(np.asarray(weight2.data)[0], 1 / (4 * f2[ids]))


def test_one_hot_mostly_unannotated_crop_does_not_dominate_the_loss():
    """A crop whose unannotated class fills 3/4 of it (as cytoplasm in CellMap crops): its
    unknown voxels carry the total weight of one class among C, like that class would if
    annotated, not 1 / (C · clipmin) each."""
    ids = np.zeros(SHAPE, np.uint8)  # background everywhere: unannotated
    ids[0] = 1  # membrane: a quarter of the crop, annotated
    ids[0, :2, :2] = 2
    full = OneHotPredictor(CLASSES)
    partial = full.for_crop(["membrane", "mito", "synapse"])
    w_part = np.asarray(partial.create_weight(_gt(ids), None)[0].data)[0]
    w_full = np.asarray(full.create_weight(_gt(ids), None)[0].data)[0]
    # unknown = background here: the same weights as annotating it
    np.testing.assert_allclose(w_part, w_full, rtol=1e-6)
    # total weight of the unknown voxels: that of one class among C = 4
    assert w_part[ids == 0].sum() == pytest.approx(ids.size / 4, rel=1e-6)


def test_one_hot_unknown_label_and_class_arrays():
    ids = _class_ids().astype(np.int64)
    ids[0] = 255
    partial = OneHotPredictor(CLASSES).for_crop(["background", "mito"], unknown_label=255)
    target = np.asarray(partial.create_target(_gt(ids)).data)
    unknown = (ids == 255) | np.isin(ids, [1, 3])
    assert np.all(target[[1, 3]][:, unknown] == 1) and np.all(target[[0, 2]][:, unknown] == 0)
    # every class annotated: unknown_label is an ignore label (target and weight 0)
    ignore = OneHotPredictor(CLASSES).for_crop(None, unknown_label=255)
    weight, _ = ignore.create_weight(_gt(ids), None)
    assert np.all(np.asarray(ignore.create_target(_gt(ids)).data)[:, ids == 255] == 0)
    assert np.all(np.asarray(weight.data)[:, ids == 255] == 0)
    # CellMap's layout: stacked class arrays (synapse missing: zeros); first class wins
    stack = np.stack([ids == c for c in range(4)]).astype(np.uint8)
    stack[3] = 0
    stack[2, 0, 0, 0] = stack[1, 0, 0, 0] = 1
    arrays = OneHotPredictor(CLASSES).for_crop(CLASSES[:3], class_arrays=True)
    known = arrays.known_ids(_gt(stack))
    assert known[0, 0, 0] == 1
    assert np.all(known[stack.any(axis=0) == 0] == 3)  # only synapse is unannotated


def test_one_hot_full_annotation_is_the_plain_predictor():
    full = OneHotPredictor(CLASSES)
    assert full.for_crop() is full and full.for_crop(CLASSES) is full
    # one unannotated class: its voxels are known, target and weight as if annotated
    ids = _class_ids()
    one_left = full.for_crop(CLASSES[1:])
    counts = np.array([[5, 3, 2, 1]])
    for pred in (full, one_left):
        assert np.array_equal(np.asarray(pred.create_target(_gt(ids)).data),
                              np.asarray(full.create_target(_gt(ids)).data))
    w_full, c_full = full.create_weight(_gt(ids), None, None, counts)
    w_part, c_part = one_left.create_weight(_gt(ids), None, None, counts)
    assert np.array_equal(np.asarray(w_full.data), np.asarray(w_part.data))
    assert np.array_equal(c_full, c_part)


@pytest.mark.parametrize("loss", [WeightedCrossEntropyLoss(), CrossEntropyDiceLoss(1.0)],
                         ids=["cross_entropy", "cross_entropy_dice"])
def test_one_hot_never_pushes_an_unannotated_class_down_where_it_is_unknown(loss):
    """Tiny model, autograd: at unknown voxels the logit gradient of every unannotated class
    is <= 0 (gradient descent never lowers it) and its probability gradients are equal (the
    loss sees only their total: zero along any move of probability among them); the naive
    treatment (unknown = background) pushes synapse down there."""
    ids = _class_ids()
    partial = OneHotPredictor(CLASSES).for_crop(["background", "mito"])
    target = partial.create_target(_gt(ids))
    weight, _ = partial.create_weight(_gt(ids), target)
    unknown = np.isin(ids, [1, 3])
    model = _tiny_model(len(CLASSES))
    logits, grad = _logits_and_grad(model, loss, target, weight)
    assert unknown.any()
    assert np.all(grad[[1, 3]][:, unknown] <= 0)
    assert np.all(grad[[0, 2]][:, unknown] > 0)  # the annotated classes: not here
    # gradient w.r.t. the probabilities: the loss of logits log(p) at p = softmax(logits)
    p = torch.softmax(torch.from_numpy(logits), dim=0)[None].requires_grad_(True)
    t = torch.from_numpy(np.asarray(target.data, np.float64)[None])
    w = torch.from_numpy(np.asarray(weight.data, np.float64)[None])
    loss.compute(torch.log(p), t, w).backward()
    dp = p.grad[0].numpy()
    np.testing.assert_allclose(dp[1][unknown], dp[3][unknown], rtol=1e-12, atol=1e-15)
    # naive: unknown voxels are background -> synapse's logit is pushed down there
    naive_ids = np.where(unknown, 0, ids)
    naive = OneHotPredictor(CLASSES)
    naive_t = naive.create_target(_gt(naive_ids))
    naive_w, _ = naive.create_weight(_gt(naive_ids), naive_t)
    _, naive_grad = _logits_and_grad(model, WeightedCrossEntropyLoss(), naive_t, naive_w)
    assert np.all(naive_grad[3][unknown] > 0)


def test_unknown_label_of_an_annotated_class_is_refused():
    with pytest.raises(ValueError, match="unknown_label 2 is the id of the annotated class 'mito'"):
        OneHotPredictor(CLASSES).for_crop(["mito"], unknown_label=2)
    with pytest.raises(ValueError, match="unknown_label 1 is the id of the annotated class 'a'"):
        DistancePredictor(["a", "b"], 2.0, False).for_crop(["a"], unknown_label=1)
    with pytest.raises(ValueError, match="class 'golgi' is not a class of the task"):
        OneHotPredictor(CLASSES).for_crop(["golgi"])
    with pytest.raises(ValueError, match="no class is annotated"):
        OneHotPredictor(CLASSES).for_crop([])
    assert Annotation.of(CLASSES, ["mito"]).unannotated == [0, 1, 3]


# --- Distance / HotDistance -----------------------------------------------------------

CHANNELS = ["mito", "synapse", "er"]


def _distance_gt() -> np.ndarray:
    """Class ids 0..3 (channel i is id i + 1) in blobs."""
    ids = np.zeros(SHAPE, np.uint8)
    ids[:, :3, :3] = 1
    ids[:, 3:, 2:5] = 2
    ids[:2, :2, 4:] = 3
    return ids


@pytest.mark.parametrize("layout", ["class_ids", "class_arrays"])
def test_distance_unannotated_channel_gets_no_gradient(layout):
    ids = _distance_gt()
    full = DistancePredictor(CHANNELS, 2.0, mask_distances=True)
    if layout == "class_ids":
        gt, partial = _gt(ids), full.for_crop(["mito", "er"])
    else:  # synapse's array is missing: zeros in the stack
        stack = np.stack([ids == 1, np.zeros(SHAPE, bool), ids == 3]).astype(np.uint8)
        gt, partial = _gt(stack), full.for_crop(["mito", "er"], class_arrays=True)
    assert isinstance(partial, PartialChannelsPredictor)
    target = partial.create_target(gt)
    weight, counts = partial.create_weight(gt, target, None, np.zeros((3, 2), np.int64))
    w = np.asarray(weight.data)
    assert np.all(w[1] == 0) and counts[1].tolist() == [0, 0]
    # the annotated channels as in a full annotation
    w_full, _ = full.create_weight(_gt(ids), full.create_target(_gt(ids)))
    np.testing.assert_array_equal(w[[0, 2]], np.asarray(w_full.data)[[0, 2]])
    _, grad = _logits_and_grad(_tiny_model(3), MSELoss(), target, weight)
    assert np.all(grad[1] == 0)
    assert np.abs(grad[0]).max() > 0 and np.abs(grad[2]).max() > 0


def test_hot_distance_unannotated_class_gets_no_gradient_on_both_channels():
    ids = _distance_gt()
    partial = HotDistancePredictor(CHANNELS, 2.0, mask_distances=False).for_crop(["mito"])
    target = partial.create_target(_gt(ids))
    weight, _ = partial.create_weight(_gt(ids), target)
    _, grad = _logits_and_grad(_tiny_model(6), HotDistanceLoss(), target, weight)
    for c in (1, 2, 4, 5):  # synapse and er: inside and distance channels
        assert np.all(grad[c] == 0)
    assert np.abs(grad[0]).max() > 0 and np.abs(grad[3]).max() > 0


def test_distance_unknown_label():
    ids = _distance_gt().astype(np.int64)
    ids[0, 0, :] = 255
    full = DistancePredictor(CHANNELS, 2.0, mask_distances=False)
    # every class annotated: an ignore label in every channel, outside in the target
    ignore = full.for_crop(unknown_label=255)
    target = ignore.create_target(_gt(ids))
    weight, _ = ignore.create_weight(_gt(ids), target)
    assert np.all(np.asarray(weight.data)[:, ids == 255] == 0)
    assert np.all(np.asarray(target.data)[:, ids == 255] < 0)
    # some unannotated: unknown voxels are outside the annotated classes (weighted)
    some = full.for_crop(["mito"], unknown_label=255)
    weight, _ = some.create_weight(_gt(ids), some.create_target(_gt(ids)))
    assert np.all(np.asarray(weight.data)[0, ids == 255] > 0)
    assert np.all(np.asarray(weight.data)[1:] == 0)
    assert full.for_crop(CHANNELS) is full
