"""Instances from distances: touching blobs split by the InnerDistance/Distance tasks'
``instances`` post-processor, blockwise == one block, and the binary + instance scores (the
kernel against its brute-force twin: tests/ops/test_distance_instances.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from funlib.geometry import Coordinate
from funlib.persistence import Array, prepare_ds
from scipy import ndimage

from dacapo.blockwise import BlockwiseOptions
from dacapo.experiments.tasks import (
    DistanceTaskConfig,
    HotDistanceTaskConfig,
    InnerDistanceTaskConfig,
)
from dacapo.experiments.tasks.evaluators import (
    BinaryInstanceEvaluationScores,
    BinarySegmentationEvaluator,
)
from dacapo.experiments.tasks.post_processors import (
    DistanceInstancesPostProcessor,
    DistanceInstancesPostProcessorParameters,
    ThresholdPostProcessor,
)
from dacapo.ops.instance_metrics import instance_metrics

# ---------------------------------------------------------------- touching blobs


def touching_blobs(shape, voxel_size, centres, radius) -> np.ndarray:
    """Balls (world units) of ``radius`` around ``centres``; overlapping parts go to the
    nearest centre, so neighbouring balls touch along a flat face. Ids 1..n."""
    grid = np.stack(np.meshgrid(*[(np.arange(n) + 0.5) * s for n, s in zip(shape, voxel_size)],
                                indexing="ij"), -1)
    dist = np.stack([np.linalg.norm(grid - np.asarray(c, float), axis=-1) for c in centres])
    labels = (np.argmin(dist, 0) + 1).astype(np.uint32)
    labels[dist.min(0) >= radius] = 0
    return labels


BLOBS = {
    # 2D: three discs in a row, 9 voxels radius, overlapping by a quarter of a radius
    2: dict(shape=(40, 76), voxel_size=(10, 10), radius=90.0,
            centres=[(200, 130), (200, 265), (200, 400)]),
    # 3D, anisotropic (z voxels 3x coarser): two spheres touching along x, one along y
    3: dict(shape=(16, 52, 52), voxel_size=(30, 10, 10), radius=150.0,
            centres=[(240, 200, 150), (240, 200, 370), (240, 420, 150)]),
}


def blob_gt(dims: int) -> Array:
    spec = BLOBS[dims]
    labels = touching_blobs(spec["shape"], spec["voxel_size"], spec["centres"], spec["radius"])
    return Array(labels, offset=(0,) * dims, voxel_size=spec["voxel_size"])


def inner_task(**kw):
    base = dict(name="inner", channels=["nucleus"], clip_distance=100.0, tol_distance=20.0,
                scale_factor=40.0, post_processor="instances")
    return InnerDistanceTaskConfig(**{**base, **kw}).build()


def _same_up_to_relabelling(seg: np.ndarray, gt: np.ndarray) -> bool:
    pairs = np.unique(np.stack([seg.reshape(-1), gt.reshape(-1)]), axis=1)
    return (len(pairs[0]) == len(np.unique(pairs[0])) == len(np.unique(pairs[1])))


def _merge_voi(gt: np.ndarray, merged: list[int]) -> float:
    """H(T|S) when the GT objects ``merged`` form one segment and the rest is exact."""
    sizes = np.array([np.sum(gt == i) for i in merged], float)
    n = np.sum(gt != 0)
    p = sizes / sizes.sum()
    return float(sizes.sum() / n * -(p * np.log2(p)).sum())


@pytest.mark.parametrize("dims", [2, 3])
def test_inner_distance_instances_split_touching_blobs(dims, tmp_path):
    gt = blob_gt(dims)
    labels = np.asarray(gt.data)
    assert len(np.unique(labels)) == 4
    task = inner_task()
    target = task.predictor.create_target(gt)
    pred = Array(np.asarray(target.data), offset=gt.offset, voxel_size=gt.voxel_size)

    # thresholding + connected components merges the touching blobs into one object
    low = min(task.config.thresholds)
    merged = ndimage.label(np.asarray(pred.data)[0] > low)[0]
    assert merged.max() == 1
    cc_voi = instance_metrics(merged, labels)["voi"]
    assert cc_voi == pytest.approx(_merge_voi(labels, [1, 2, 3]), abs=1e-9)
    assert cc_voi > 1.0

    post = task.post_processor
    post.set_prediction(pred)
    params = DistanceInstancesPostProcessorParameters(id=0, threshold=low, seed_threshold=0.7)
    seg = post.process(params, tmp_path / "o.zarr" / "s")
    assert seg.dtype == np.uint64 and seg.shape == labels.shape  # no channel axis for C = 1
    data = np.asarray(seg.to_ndarray(seg.roi))
    assert len(np.unique(data[data != 0])) == 3
    assert _same_up_to_relabelling(data, labels)
    scores = task.evaluator.evaluate(seg, gt)
    assert scores.voi == 0.0 and scores.adapted_rand_error == 0.0 and scores.f1 == 1.0
    assert scores.nucleus__dice == 1.0 and scores.ap50 == 1.0

    # a blurred, noisy prediction: still three objects, VOI small, CC still merges them
    rng = np.random.default_rng(dims)
    sigma = [2 * min(gt.voxel_size) / s for s in gt.voxel_size]
    noisy = ndimage.gaussian_filter(np.asarray(pred.data)[0], sigma)
    noisy = noisy + 0.03 * rng.standard_normal(noisy.shape)
    post.set_prediction(Array(noisy[None].astype(np.float32), offset=gt.offset,
                              voxel_size=gt.voxel_size))
    params = DistanceInstancesPostProcessorParameters(id=0, threshold=0.1, seed_threshold=0.7,
                                                      min_size=10)
    seg = np.asarray(post.process(params, tmp_path / "o.zarr" / "n")[:])
    metrics = instance_metrics(seg, labels)
    assert len(np.unique(seg[seg != 0])) == 3
    assert metrics["voi"] < 0.35 and metrics["adapted_rand_error"] < 0.05
    assert metrics["f1"] == 1.0
    # one connected component of the thresholded prediction holds all three blobs
    components = ndimage.label(noisy > 0.1)[0]
    ids = np.unique(components[labels > 0])
    assert len(ids[ids != 0]) == 1


def test_distance_and_hot_distance_instances_split_a_neck(tmp_path):
    """Signed distance of a binary mask: two discs joined by a neck split at its saddle."""
    spec = BLOBS[2]
    labels = touching_blobs(spec["shape"], spec["voxel_size"],
                            [(200, 120), (200, 270), (200, 420)], spec["radius"])
    gt = Array(labels, offset=(0, 0), voxel_size=spec["voxel_size"])
    binary = (labels > 0).astype(np.uint8)
    # neck half-width 50 (tanh(50/40) = 0.85), disc centres 90 (0.98): seeds above 0.9
    common = dict(channels=["cell"], clip_distance=100.0, tol_distance=20.0, scale_factor=40.0,
                  post_processor="instances", seed_thresholds=[0.9], thresholds=[0.0])
    for config in (DistanceTaskConfig(name="d", **common),
                   HotDistanceTaskConfig(name="h", **common)):
        task = config.build()
        target = task.predictor.create_target(Array(binary, offset=gt.offset,
                                                    voxel_size=gt.voxel_size))
        pred = np.asarray(target.data).astype(np.float32)
        task.post_processor.set_prediction(Array(pred, offset=gt.offset, voxel_size=gt.voxel_size))
        (params,) = task.parameters
        seg = task.post_processor.process(params, tmp_path / f"{config.name}.zarr" / "s")
        scores = task.evaluator.evaluate(seg, gt)  # GT with instance ids
        data = np.asarray(seg[:])
        assert len(np.unique(data[data != 0])) == 3, config.name
        assert scores.cell__dice == 1.0
        # the flood fronts meet at the necks within a voxel or two of the GT's bisectors
        assert scores.f1 == 1.0 and scores.voi < 0.25, config.name
        assert scores.adapted_rand_error < 0.05 and scores.mean_matched_iou > 0.95


# ---------------------------------------------------------------- blockwise


def _write(path, data: np.ndarray, voxel_size) -> str:
    ds = prepare_ds(str(path), shape=data.shape, offset=(0,) * len(voxel_size),
                    voxel_size=voxel_size, axis_names=["c^"] + ["z", "y", "x"][-len(voxel_size):],
                    dtype=data.dtype, mode="w")
    ds[ds.roi] = data
    return str(path)


def test_blockwise_equals_one_block(tmp_path):
    """Anisotropic 3D blobs, blurred: blockwise (2 x 2 blocks in y, x; objects cut by the
    block faces) gives the one-block segmentation up to relabelling when the context
    exceeds the objects' diameter."""
    spec = dict(shape=(12, 64, 64), voxel_size=(30, 10, 10), radius=110.0)
    rng = np.random.default_rng(0)
    centres = [(rng.uniform(120, 240), *rng.uniform(80, 560, 2)) for _ in range(14)]
    labels = touching_blobs(spec["shape"], spec["voxel_size"], centres, spec["radius"])
    gt = Array(labels, offset=(0, 0, 0), voxel_size=spec["voxel_size"])
    task = inner_task(instance_context=300.0, min_size=5)  # > the blobs' diameter (220)
    pred = np.asarray(task.predictor.create_target(gt).data)
    pred = ndimage.gaussian_filter(pred, (0, 0.5, 1.5, 1.5)) + 0.02 * rng.standard_normal(pred.shape)
    pred = pred.astype(np.float32)
    post = task.post_processor
    params = DistanceInstancesPostProcessorParameters(id=3, threshold=0.1, seed_threshold=0.7,
                                                      min_size=5)
    post.set_prediction(Array(pred, offset=(0, 0, 0), voxel_size=spec["voxel_size"]))
    one = np.asarray(post.process(params, tmp_path / "o.zarr" / "one")[:])
    assert len(np.unique(one)) > 8
    post.set_prediction(_write(tmp_path / "p.zarr" / "pred", pred, spec["voxel_size"]))
    block = Coordinate(12, 32, 32) * Coordinate(spec["voxel_size"])
    blockwise = post.process(params, tmp_path / "o.zarr" / "blocks",
                             BlockwiseOptions(num_workers=1), block_size=block)
    assert blockwise.roi == Array(pred, voxel_size=spec["voxel_size"]).roi
    got = np.asarray(blockwise[:])
    metrics = instance_metrics(got, one)
    assert metrics["voi"] == 0.0
    assert _same_up_to_relabelling(got, one)


def test_blockwise_context_larger_than_block_is_refused(tmp_path):
    post = DistanceInstancesPostProcessor([0.1], [0.5], context=500.0)
    post.set_prediction(_write(tmp_path / "p.zarr" / "pred", np.zeros((1, 40, 40), np.float32),
                               (10, 10)))
    with pytest.raises(ValueError, match="smaller than the context"):
        post.process(DistanceInstancesPostProcessorParameters(0, 0.1, 0.5), tmp_path / "o.zarr/s",
                     block_size=Coordinate(200, 200))


# ---------------------------------------------------------------- scores and configs


def test_scores_names_directions_bounds():
    one = BinaryInstanceEvaluationScores(channels=["a"])
    assert len(one.criteria) == 21 + 11 and len(set(one.criteria)) == len(one.criteria)
    assert "a__voi" in one.criteria and "voi" in one.criteria and "a__instance_voi" not in one.criteria
    two = BinaryInstanceEvaluationScores(channels=["a", "b"])
    assert len(set(two.criteria)) == 2 * 21 + 2 * 11 + 11
    expected = {"voi": (False, (0, math.inf)), "ap50": (True, (0, 1)), "f1": (True, (0, 1)),
                "adapted_rand_error": (False, (0, 1)), "a__dice": (True, (0, 1)),
                "b__instance_voi_split": (False, (0, math.inf)), "b__instance_map": (True, (0, 1)),
                "b__instance_f1_50_95": (True, (0, 1)), "f1_50_95": (True, (0, 1)),
                "a__hausdorff": (False, (0, math.inf)), "a__voi": (False, (0, 2))}
    for criterion, (higher, bounds) in expected.items():
        assert two.higher_is_better(criterion) is higher, criterion
        assert two.bounds(criterion) == bounds, criterion
        assert two.store_best(criterion)
    for criterion in two.criteria:
        two.metric_info(criterion)  # every criterion is known
    with pytest.raises(KeyError):
        two.metric_info("a__instance_dice")


def test_two_channels_mean_and_per_channel(tmp_path):
    gt2 = blob_gt(2)
    labels = np.asarray(gt2.data)
    gt = Array(np.stack([labels, labels]), offset=gt2.offset, voxel_size=gt2.voxel_size)
    task = inner_task(channels=["a", "b"])
    seg = np.stack([labels, (labels > 0).astype(labels.dtype)]).astype(np.uint64)
    scores = task.evaluator.evaluate(Array(seg, offset=gt.offset, voxel_size=gt.voxel_size), gt)
    merged = _merge_voi(labels, [1, 2, 3])
    assert scores.a__instance_voi == 0.0
    assert scores.b__instance_voi == pytest.approx(merged)
    assert scores.voi == pytest.approx(merged / 2)
    assert scores.a__dice == scores.b__dice == 1.0


def test_config_defaults_keep_threshold_and_validate_fields():
    for cls in (InnerDistanceTaskConfig, DistanceTaskConfig, HotDistanceTaskConfig):
        config = cls(name="t", channels=["a"], clip_distance=10.0, tol_distance=2.0)
        task = config.build()
        assert isinstance(task.post_processor, ThresholdPostProcessor)
        assert isinstance(task.evaluator, BinarySegmentationEvaluator)
        assert [p.threshold for p in task.parameters] == config.thresholds
        assert config.thresholds == sorted(config.thresholds)
        for field in ("thresholds", "post_processor", "seed_thresholds", "seed_h",
                      "min_seed_distance", "min_size", "instance_context"):
            assert "help_text" in next(f for f in cls.__attrs_attrs__ if f.name == field).metadata
    assert DistanceTaskConfig(name="d", channels=["a"], clip_distance=1.0,
                              tol_distance=1.0).thresholds == [-0.5, -0.25, 0.0, 0.25, 0.5]
    base = dict(name="i", channels=["a"], clip_distance=1.0, tol_distance=1.0)
    bad = [
        (dict(post_processor="watershed"), "post_processor: must be one of"),
        (dict(thresholds=[]), "thresholds: must be a non-empty list"),
        (dict(thresholds=[0.1, 0.1]), "thresholds: duplicate"),
        (dict(thresholds=[1.5]), "thresholds: every value must lie in (-1, 1)"),
        (dict(post_processor="instances", seed_thresholds=[0.05], thresholds=[0.1]),
         "seed_thresholds: none of"),
        (dict(post_processor="instances", seed_h=-1), "seed_h"),
        (dict(post_processor="instances", min_size=-3), "min_size"),
        (dict(post_processor="instances", min_seed_distance=-1.0), "min_seed_distance"),
    ]
    for fields, message in bad:
        ok, reason = InnerDistanceTaskConfig(**base, **fields).verify()
        assert not ok and message in reason, (fields, reason)


def test_instances_sweep_pairs_seed_above_mask():
    task = inner_task(thresholds=[0.1, 0.5, 0.8], seed_thresholds=[0.5, 0.9], seed_h=0.1,
                      min_seed_distance=50.0, min_size=7)
    pairs = [(p.threshold, p.seed_threshold) for p in task.parameters]
    assert pairs == [(0.1, 0.5), (0.1, 0.9), (0.5, 0.9), (0.8, 0.9)]
    assert [p.id for p in task.parameters] == [0, 1, 2, 3]
    assert {(p.h, p.min_seed_distance, p.min_size) for p in task.parameters} == {(0.1, 50.0, 7)}
    # default blockwise context: 4 x scale_factor, rounded up to voxels
    assert task.post_processor.context_voxels(Coordinate(30, 10, 10)) == Coordinate(6, 16, 16)


def test_main_criterion_is_instance_f1():
    from dacapo.runs.scores import main_criterion

    assert main_criterion(inner_task()) == "f1"
    assert main_criterion(inner_task(post_processor="threshold")) == "nucleus__dice"


def test_blockwise_evaluation_equals_in_memory(tmp_path):
    from dacapo.experiments.tasks.evaluators import evaluate_blockwise

    gt = blob_gt(3)
    labels = np.asarray(gt.data)
    task = inner_task()
    seg = np.where(labels == 3, 2, labels).astype(np.uint64)[None]  # blobs 2 and 3 merged
    seg_path = _write(tmp_path / "s.zarr" / "seg", seg, gt.voxel_size)
    ds = prepare_ds(str(tmp_path / "s.zarr" / "gt"), shape=labels.shape, voxel_size=gt.voxel_size,
                    axis_names=["z", "y", "x"], dtype=labels.dtype, mode="w")
    ds[ds.roi] = labels
    expected = task.evaluator.evaluate(seg_path, str(tmp_path / "s.zarr" / "gt"))
    got = evaluate_blockwise(task.evaluator, seg_path, str(tmp_path / "s.zarr" / "gt"),
                             block_size=Coordinate(8, 16, 16) * gt.voxel_size)
    assert type(got) is type(expected) and got.criteria == expected.criteria
    assert expected.voi == pytest.approx(_merge_voi(labels, [2, 3]))
    for criterion in expected.criteria:
        assert got[criterion] == pytest.approx(expected[criterion], nan_ok=True), criterion
