"""AffinitiesPredictor, AffinitiesLoss and the Affinities task end to end (tiny model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array
from scipy import ndimage

from dacapo.experiments.architectures import CNNectomeUNetConfig
from dacapo.experiments.tasks import AffinitiesTaskConfig
from dacapo.experiments.tasks.losses import AffinitiesLoss
from dacapo.experiments.tasks.predictors import AffinitiesPredictor
from tests.references import blob_labels, brute_affinities, brute_lsds, brute_mask, label_edges

NBH = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (0, -3, 0), (0, 0, 4)]
VOXEL = Coordinate(8, 4, 4)


def array(data, offset=None, voxel_size=VOXEL) -> Array:
    dims = len(voxel_size)
    offset = (0,) * dims if offset is None else offset
    names = ["z", "y", "x"][-dims:]
    if data.ndim > dims:
        names = ["c^"] + names
    return Array(data, offset=offset, voxel_size=voxel_size, axis_names=names)


def balanced(classes: np.ndarray, valid: np.ndarray, clipmin=0.05, clipmax=0.95, counts=None):
    """Brute force: w = 1 / (2 f_class) on valid voxels, f clipped, counts optionally
    accumulated; returns the weights and the (n0, n1) counts."""
    n1 = int(np.sum(classes[valid] == 1))
    n0 = int(np.sum(valid)) - n1
    if counts is not None:
        n0, n1 = n0 + counts[0], n1 + counts[1]
    f1 = min(max(n1 / (n0 + n1), clipmin), clipmax)
    f0 = min(max(n0 / (n0 + n1), clipmin), clipmax)
    w = np.where(classes == 1, 1 / (2 * f1), 1 / (2 * f0)) * valid
    return w, (n0, n1)


# ---------------------------------------------------------------------------------------
# predictor
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("background_as_object", [False, True])
def test_target_and_weight_equal_brute_force(background_as_object):
    labels = blob_labels((10, 16, 18), num=9, seed=2)
    rng = np.random.default_rng(0)
    mask = (rng.random(labels.shape) < 0.85).astype(np.uint8)
    predictor = AffinitiesPredictor(
        NBH, lsds=True, num_lsd_voxels=2, affs_weight_clipmin=0.1, affs_weight_clipmax=0.9,
        lsd_weight_clipmin=0.2, lsd_weight_clipmax=0.8, background_as_object=background_as_object,
    )
    gt = array(labels, offset=(80, 40, 40))
    target = predictor.create_target(gt)
    affs = brute_affinities(labels, NBH, background_as_object)
    lsds = brute_lsds(labels, VOXEL, sigma=2 * 8.0)
    assert target.data.shape == (len(NBH) + 10, *labels.shape)
    assert target.roi == gt.roi and target.axis_names[0] == "c^"
    np.testing.assert_array_equal(target.data[: len(NBH)], affs)
    np.testing.assert_allclose(target.data[len(NBH):], lsds, atol=1e-4)

    weight, counts = predictor.create_weight(gt, target, array(mask, offset=(80, 40, 40)))
    weight = np.asarray(weight.data)
    valid = brute_mask(mask, labels.shape, NBH).astype(bool)
    for k in range(len(NBH)):
        w, n = balanced(affs[k], valid[k], 0.1, 0.9)
        np.testing.assert_allclose(weight[k], w, rtol=1e-6)
        assert tuple(counts[0][k]) == n
    w_lsd, n_lsd = balanced((labels != 0).astype(np.uint8), mask.astype(bool), 0.2, 0.8)
    for k in range(len(NBH), len(NBH) + 10):
        np.testing.assert_allclose(weight[k], w_lsd, rtol=1e-6)
    assert tuple(counts[1][0]) == n_lsd

    # moving counts: a second batch is balanced by the frequencies of both
    labels2 = blob_labels((10, 16, 18), num=4, seed=5)
    gt2 = array(labels2)
    weight2, counts2 = predictor.create_weight(gt2, predictor.create_target(gt2), None, counts)
    affs2 = brute_affinities(labels2, NBH, background_as_object)
    valid2 = brute_mask(None, labels2.shape, NBH).astype(bool)
    for k in range(len(NBH)):
        w, n = balanced(affs2[k], valid2[k], 0.1, 0.9, counts=counts[0][k])
        np.testing.assert_allclose(np.asarray(weight2.data)[k], w, rtol=1e-6)
        assert tuple(counts2[0][k]) == n


@pytest.mark.parametrize("downsample", [1, 2])
@pytest.mark.parametrize("dims", [2, 3])
def test_padding_makes_the_output_roi_exact(dims, downsample):
    """Target in the output ROI from the crop given by gt_region_for_roi equals the target
    of the whole volume there; the weight has no crop-edge zeros in the output ROI."""
    voxel = VOXEL if dims == 3 else Coordinate(4, 6)
    nbh = NBH if dims == 3 else [(1, 0), (0, 1), (-4, 0), (0, 5)]
    shape = (36, 60, 60) if dims == 3 else (90, 80)
    labels = blob_labels(shape, num=25, seed=dims)
    whole = array(labels, voxel_size=voxel)
    predictor = AffinitiesPredictor(nbh, lsds=True, num_lsd_voxels=1, downsample_lsds=downsample)
    out_roi = Roi(whole.roi.center, Coordinate((4,) * dims) * voxel).snap_to_grid(
        voxel * downsample, mode="shrink"
    )
    gt_roi = predictor.gt_region_for_roi(out_roi, voxel)
    assert whole.roi.contains(gt_roi)
    assert gt_roi.contains(out_roi) and gt_roi.offset % (voxel * downsample) == Coordinate(
        (0,) * dims
    )
    crop = array(whole.to_ndarray(gt_roi), offset=gt_roi.offset, voxel_size=voxel)
    from_crop = predictor.create_target(crop).to_ndarray(out_roi)
    from_whole = predictor.create_target(whole).to_ndarray(out_roi)
    np.testing.assert_allclose(from_crop, from_whole, atol=1e-5)
    weight, _ = predictor.create_weight(crop, predictor.create_target(crop))
    assert (weight.to_ndarray(out_roi) > 0).all()
    # without LSDs the padding is max |offset| per axis
    plain = AffinitiesPredictor(nbh)
    expected = [max(abs(o[d]) for o in nbh) * voxel[d] for d in range(dims)]
    assert plain.padding(voxel) == Coordinate(expected)


def test_model_head_and_eval_activation():
    predictor = AffinitiesPredictor(NBH, lsds=True)
    arch = CNNectomeUNetConfig(
        name="u", input_shape=(12, 16, 16), fmaps_out=4, fmaps_in=1, num_fmaps=2,
        fmap_inc_factor=2, downsample_factors=[(1, 2, 2)], padding="same",
    )
    model = predictor.create_model(arch)
    x = torch.randn(1, 1, 12, 16, 16)
    logits = model.train()(x)
    assert logits.shape == (1, len(NBH) + 10, 12, 16, 16)
    with torch.no_grad():
        probs = model.eval()(x)
    torch.testing.assert_close(probs, torch.sigmoid(logits.detach()))
    assert predictor.output_array_type.num_channels == len(NBH) + 10
    assert predictor.channels == ["aff_1_0_0", "aff_0_1_0", "aff_0_0_1", "aff_0_-3_0", "aff_0_0_4"]


def test_predictor_bad_input():
    predictor = AffinitiesPredictor(NBH, lsds=True)
    with pytest.raises(ValueError, match="gt: expected integer labels"):
        predictor.create_target(array(np.full((4, 5, 6), 0.5)))
    with pytest.raises(ValueError, match="gt: 2 spatial dims"):
        predictor.create_target(array(np.zeros((5, 6), int), voxel_size=(4, 4)))
    gt = array(np.zeros((4, 5, 6), int))
    target = predictor.create_target(gt)
    with pytest.raises(ValueError, match="mask: roi"):
        predictor.create_weight(gt, target, array(np.ones((4, 5, 7), np.uint8)))
    with pytest.raises(ValueError, match="target: expected shape"):
        predictor.create_weight(gt, array(np.zeros((5, 4, 5, 6), np.float32)))
    with pytest.raises(ValueError, match="moving_class_counts"):
        predictor.create_weight(gt, target, None, np.zeros((5, 2)))
    with pytest.raises(ValueError, match="neighborhood"):
        AffinitiesPredictor([(1, 0), (0, 1, 0)])


# ---------------------------------------------------------------------------------------
# loss
# ---------------------------------------------------------------------------------------


def reference_loss(p, t, w, k, ratio):
    """Σ w·BCE(logit) / N over the first k channels + ratio · Σ w (σ(p) − t)² / N after."""
    p, t, w = (np.asarray(a, np.float64) for a in (p, t, w))
    bce = np.maximum(p[:, :k], 0) - p[:, :k] * t[:, :k] + np.log1p(np.exp(-np.abs(p[:, :k])))
    loss = np.mean(w[:, :k] * bce)
    if p.shape[1] > k:
        loss += ratio * np.mean(w[:, k:] * (1 / (1 + np.exp(-p[:, k:])) - t[:, k:]) ** 2)
    return loss


@pytest.mark.parametrize("num_lsds", [0, 10])
def test_loss_equals_reference_and_honours_weights(num_lsds):
    k = 4
    rng = np.random.default_rng(num_lsds)
    shape = (2, k + num_lsds, 3, 5, 6)
    p = torch.tensor(rng.normal(0, 2, shape), dtype=torch.float32)
    t = torch.tensor(rng.random(shape) < 0.5, dtype=torch.float32)
    t[:, k:] = torch.tensor(rng.random((2, num_lsds, 3, 5, 6)), dtype=torch.float32)
    w = torch.tensor(rng.random(shape) * (rng.random(shape) < 0.7), dtype=torch.float32)
    loss = AffinitiesLoss(k, lsds_to_affs_weight_ratio=0.3)
    value = loss.compute(p, t, w)
    assert value.item() == pytest.approx(reference_loss(p, t, w, k, 0.3), rel=1e-5)
    # zero weight = ignored: changing the prediction there changes nothing
    p2 = p.clone()
    p2[w == 0] = 50.0
    assert loss.compute(p2, t, w).item() == pytest.approx(value.item(), rel=1e-6)
    # nonzero weight counts, in the affinity channels and (if any) in the LSD channels
    for lo, hi in ((0, k), (k, k + num_lsds)):
        if hi > lo:
            p3 = p.clone()
            p3[:, lo:hi][w[:, lo:hi] > 0] -= 3.0
            changed = loss.compute(p3, t, w).item()
            assert changed == pytest.approx(reference_loss(p3, t, w, k, 0.3), rel=1e-5)
            assert abs(changed - value.item()) > 1e-3
    # weights multiply once: doubling the weights doubles the loss
    assert loss.compute(p, t, 2 * w).item() == pytest.approx(2 * value.item(), rel=1e-5)
    with pytest.raises(ValueError, match="weight shape"):
        loss.compute(p, t, w[:, :1])
    with pytest.raises(ValueError, match="prediction: expected"):
        AffinitiesLoss(9).compute(p[:, :3], t[:, :3], w[:, :3])


@pytest.mark.parametrize("lsds", [False, True])
def test_masked_edges_do_not_affect_loss(lsds):
    """Predictor weights + loss: predictions on edges with a masked-out end (or leaving the
    crop) have no effect, with and without LSDs; the LSD channels get gradient."""
    labels = blob_labels((8, 12, 12), num=6, seed=1)
    mask = np.ones(labels.shape, np.uint8)
    mask[:, :, :4] = 0
    predictor = AffinitiesPredictor(NBH, lsds=lsds, num_lsd_voxels=1)
    gt = array(labels)
    target = predictor.create_target(gt)
    weight, _ = predictor.create_weight(gt, target, array(mask))
    k = len(NBH)
    valid = brute_mask(mask, labels.shape, NBH).astype(bool)
    assert (np.asarray(weight.data)[:k][~valid] == 0).all()
    assert (np.asarray(weight.data)[:k][valid] > 0).all()
    t = torch.tensor(np.asarray(target.data))[None]
    w = torch.tensor(np.asarray(weight.data))[None]
    p = torch.zeros_like(t, requires_grad=True)
    loss = AffinitiesLoss(k, 1.0)
    value = loss.compute(p, t, w)
    value.backward()
    assert (p.grad[0, :k][torch.tensor(~valid)] == 0).all()
    if lsds:
        assert p.grad[0, k:][:, torch.tensor(mask == 0)].abs().sum() == 0
        assert p.grad[0, k:].abs().sum() > 0
    noisy = torch.where(torch.tensor(~valid)[None], torch.full_like(t[:, :k], 9.0), 0 * t[:, :k])
    p2 = torch.cat([noisy, torch.zeros_like(t[:, k:])], dim=1)
    assert loss.compute(p2, t, w).item() == pytest.approx(value.item(), rel=1e-6)


# ---------------------------------------------------------------------------------------
# the task end to end: train a tiny model, validate with the watershed and VOI
# ---------------------------------------------------------------------------------------


def synthetic(seed: int, shape=(16, 40, 40)):
    """Cells (Voronoi, one-voxel dark gaps between them) and a noisy membrane image."""
    rng = np.random.default_rng(seed)
    labels = blob_labels(shape, num=30, seed=seed, background=0.0)
    labels[label_edges(labels)] = 0
    labels, _ = ndimage.label(labels > 0)  # split merged Voronoi ids into connected cells
    raw = np.where(labels > 0, 1.0, 0.0) + rng.normal(0, 0.3, shape)
    return raw.astype(np.float32), labels.astype(np.uint64)


@pytest.fixture
def one_thread():
    """One torch thread: on a shared 2-core machine two threads spin-wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_task_with_lsds_trains_and_beats_untrained_model(tmp_path, one_thread):
    torch.manual_seed(0)
    nbh = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 3, 0), (0, 0, 3)]
    task = AffinitiesTaskConfig(name="affs", neighborhood=nbh, lsds=True, num_lsd_voxels=2).build()
    arch = CNNectomeUNetConfig(
        name="u", input_shape=(8, 24, 24), fmaps_out=8, fmaps_in=1, num_fmaps=8,
        fmap_inc_factor=2, downsample_factors=[(1, 2, 2)], padding="same",
    )
    model = task.create_model(arch)
    voxel = Coordinate(4, 4, 4)
    raw, labels = synthetic(0)
    val_raw, val_labels = synthetic(1)

    def validate() -> float:
        with torch.no_grad():
            pred = model.eval()(torch.tensor(val_raw)[None, None])[0].numpy()
        model.train()
        task.post_processor.set_prediction(array(pred, voxel_size=voxel))
        vois = []
        for i, params in enumerate(task.parameters):
            seg = task.post_processor.process(params, tmp_path / "s.zarr" / str(i))
            vois.append(task.evaluator.evaluate(seg, array(val_labels, voxel_size=voxel)).voi)
        return min(vois)

    untrained = validate()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    counts = None
    lsd_head = slice(len(nbh), len(nbh) + 10)
    pad = task.predictor.padding(voxel) / voxel
    size = Coordinate(arch.input_shape)
    padded = np.pad(labels, [(p, p) for p in pad])  # labels with context (0 outside) ...
    inside = np.pad(np.ones(labels.shape, np.uint8), [(p, p) for p in pad])  # ... masked out
    for _ in range(40):
        start = [int(rng.integers(0, s - c + 1)) for s, c in zip(raw.shape, size)]
        window = tuple(slice(b, b + c) for b, c in zip(start, size))
        out_roi = Roi(Coordinate(start) * voxel, size * voxel)
        gt_roi = task.predictor.gt_region_for_roi(out_roi, voxel)
        crop = tuple(slice(b, b + s) for b, s in zip(start, gt_roi.shape / voxel))
        gt = array(padded[crop], offset=gt_roi.offset, voxel_size=voxel)
        mask = array(inside[crop], offset=gt_roi.offset, voxel_size=voxel)
        target = task.predictor.create_target(gt)
        weight, counts = task.predictor.create_weight(gt, target, mask, counts)
        t = torch.tensor(target.to_ndarray(out_roi))[None]
        w = torch.tensor(weight.to_ndarray(out_roi))[None]
        optimizer.zero_grad()
        loss = task.loss.compute(model(torch.tensor(raw[window])[None, None]), t, w)
        loss.backward()
        head_grad = model.head.weight.grad[lsd_head]
        assert head_grad.abs().sum() > 0  # the LSD channels receive gradient
        optimizer.step()
    trained = validate()
    assert trained < 0.5 * untrained, (trained, untrained)
