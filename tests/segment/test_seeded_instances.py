"""Instances from distances: the kernel against a brute-force twin, touching blobs split by
the InnerDistance/Distance tasks' ``instances`` post-processor, blockwise == one block, and
the binary + instance scores."""

from __future__ import annotations

import heapq
import itertools
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
from dacapo.ops.distance_instances import distance_instances, h_maxima_voxels, join_seeds
from dacapo.ops.instance_metrics import instance_metrics

# ---------------------------------------------------------------- brute-force twin


def _neighbours(index, shape, full: bool):
    """Indices of the face (or full) neighbours of ``index`` inside ``shape``."""
    for step in itertools.product((-1, 0, 1), repeat=len(shape)):
        if not any(step) or (not full and sum(map(abs, step)) != 1):
            continue
        q = tuple(i + s for i, s in zip(index, step))
        if all(0 <= v < n for v, n in zip(q, shape)):
            yield q


def _components(mask: np.ndarray, full: bool) -> np.ndarray:
    structure = np.ones((3,) * mask.ndim) if full else None
    return ndimage.label(mask, structure=structure)[0]


def _h_maxima_brute(f: np.ndarray, h: float) -> np.ndarray:
    """v is a seed voxel iff no full-connectivity path from v, through voxels with f > g(v),
    reaches a voxel u with g(u) > g(v) (g = f - h in float64): flood fill per voxel."""
    f = f.astype(np.float64)
    g = f - h
    out = np.zeros(f.shape, bool)
    for v in np.ndindex(f.shape):
        seen, stack, ok = {v}, [v], True
        while stack and ok:
            p = stack.pop()
            for q in _neighbours(p, f.shape, full=True):
                if q in seen or not f[q] > g[v]:
                    continue
                if g[q] > g[v]:
                    ok = False
                    break
                seen.add(q)
                stack.append(q)
        out[v] = ok
    return out


def _join_brute(seeds: np.ndarray, voxel_size, r: float) -> np.ndarray:
    """Seed ids: components of {v : min over seed voxels u of |(v - u) * s| <= r / 2}."""
    if r > 0 and seeds.any():
        grid = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(seeds.shape, voxel_size)],
                                    indexing="ij"), -1)
        points = grid[seeds]
        dist = np.linalg.norm(grid[..., None, :] - points, axis=-1).min(-1)
        labels = _components(dist <= r / 2, full=True)
    else:
        labels = _components(seeds, full=True)
    return np.where(seeds, labels, 0)


def _flood_brute(f: np.ndarray, markers: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Meyer's flooding of -f from ``markers`` within ``mask`` (face neighbours): pop the
    queued voxel of highest f; each unlabelled masked neighbour takes its label."""
    labels = markers.copy()
    heap, age = [], itertools.count()
    for v in zip(*np.nonzero(markers)):
        heapq.heappush(heap, (-f[v], next(age), v))
    while heap:
        _, _, p = heapq.heappop(heap)
        for q in _neighbours(p, f.shape, full=False):
            if mask[q] and labels[q] == 0:
                labels[q] = labels[p]
                heapq.heappush(heap, (-f[q], next(age), q))
    return labels


def _first_occurrence(labels: np.ndarray) -> np.ndarray:
    out = np.zeros(labels.shape, np.uint64)
    mapping: dict[int, int] = {}
    for i, v in enumerate(labels.reshape(-1)):
        if v:
            mapping.setdefault(int(v), len(mapping) + 1)
            out.reshape(-1)[i] = mapping[int(v)]
    return out


def _instances_brute(f, voxel_size, threshold, seed_threshold, h, r) -> np.ndarray:
    mask = f > threshold
    seeds = f > seed_threshold
    if h is not None:
        seeds &= _h_maxima_brute(f, h)
    markers = _join_brute(seeds & mask, voxel_size, r)
    labels = _flood_brute(f, markers, mask)
    orphans = _components(mask & (labels == 0), full=False)
    labels = np.where(orphans > 0, orphans + labels.max(), labels)
    return _first_occurrence(labels)


@pytest.mark.parametrize("shape, voxel_size", [((9, 11), (2.0, 1.0)), ((5, 6, 7), (3.0, 1.0, 1.5))])
@pytest.mark.parametrize("h, r", [(None, 0.0), (0.15, 0.0), (0.0, 0.0), (None, 3.5), (0.3, 2.5)])
def test_kernel_equals_brute_force(shape, voxel_size, h, r):
    rng = np.random.default_rng(len(shape) * 10 + int(10 * (h or 0)) + int(r))
    # a smooth bumpy field with distinct values (no ties in the flooding order)
    f = ndimage.gaussian_filter(rng.uniform(-1, 1, shape), 1.0)
    f = (f - f.min()) / (f.max() - f.min()) * 1.6 - 0.4 + rng.uniform(0, 1e-6, shape)
    f = f.astype(np.float32)
    for threshold, seed_threshold in [(0.1, 0.6), (0.3, 0.5), (-0.5, 0.9)]:
        expected = _instances_brute(f, voxel_size, threshold, seed_threshold, h, r)
        got = distance_instances(f, voxel_size, threshold, seed_threshold, h, r)
        assert got.dtype == np.uint64
        np.testing.assert_array_equal(got, expected, err_msg=f"t={threshold} s={seed_threshold}")


def test_h_maxima_and_join_against_brute_force():
    rng = np.random.default_rng(3)
    f = ndimage.gaussian_filter(rng.uniform(0, 1, (8, 9, 7)), 0.8).astype(np.float32)
    for h in (0.0, 0.01, 0.05, 1.0):
        np.testing.assert_array_equal(h_maxima_voxels(f, h), _h_maxima_brute(f, h))
    # a plateau top is one seed voxel set; h = 0 gives the local maxima
    plateau = np.zeros((5, 5), np.float32)
    plateau[1:3, 1:4] = 1.0
    assert h_maxima_voxels(plateau, 0.0)[1:3, 1:4].all()
    seeds = rng.uniform(size=(7, 8, 9)) > 0.93
    for r in (0.0, 2.0, 4.5):
        np.testing.assert_array_equal(join_seeds(seeds, (2.0, 1.0, 1.0), r),
                                      _join_brute(seeds, (2.0, 1.0, 1.0), r))


def test_kernel_bad_input():
    with pytest.raises(ValueError, match="prediction: contains non-finite"):
        distance_instances(np.full((4, 4), np.nan), (1, 1), 0.1, 0.5)
    with pytest.raises(ValueError, match="voxel_size"):
        distance_instances(np.zeros((4, 4)), (1, 1, 1), 0.1, 0.5)
    with pytest.raises(ValueError, match="min_seed_distance"):
        distance_instances(np.zeros((4, 4)), (1, 1), 0.1, 0.5, min_seed_distance=-1)


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
    assert len(one.criteria) == 21 + 10 and len(set(one.criteria)) == len(one.criteria)
    assert "a__voi" in one.criteria and "voi" in one.criteria and "a__instance_voi" not in one.criteria
    two = BinaryInstanceEvaluationScores(channels=["a", "b"])
    assert len(set(two.criteria)) == 2 * 21 + 2 * 10 + 10
    expected = {"voi": (False, (0, math.inf)), "ap50": (True, (0, 1)), "f1": (True, (0, 1)),
                "adapted_rand_error": (False, (0, 1)), "a__dice": (True, (0, 1)),
                "b__instance_voi_split": (False, (0, math.inf)), "b__instance_map": (True, (0, 1)),
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


def test_pipeline_validates_inner_distance_instances(tmp_path, tiny_data, tiny_run):
    """train + validate of a tiny InnerDistance run with ``post_processor: instances``:
    every criterion of both score sets is stored for every parameter (an untrained model's
    constant segmentations are never chosen as best, so best.json may stay empty)."""
    from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig
    from dacapo.training.loop import train_run

    container = tiny_data(tmp_path)
    split = DataSplitConfig(
        train=[DatasetConfig("train", f"{container}/train/raw", f"{container}/train/labels")],
        validate=[DatasetConfig("validate", f"{container}/validate/raw",
                                f"{container}/validate/labels")],
    )
    config = InnerDistanceTaskConfig("inner", channels=["cell"], clip_distance=40,
                                     tol_distance=16, scale_factor=20, post_processor="instances",
                                     thresholds=[0.1, 0.3], seed_thresholds=[0.5])
    rc = tiny_run(container, task_config=config, datasplit_config=split, num_iterations=2,
                  validation_interval=2, checkpoint_interval=2)
    run_dir = train_run(rc, tmp_path / "runs", progress=False)
    rows = run_dir.validation_scores()
    criteria = {r["criterion"] for r in rows}
    assert criteria == set(config.build().evaluation_scores.criteria)
    assert {"voi", "adapted_rand_error", "f1", "cell__dice", "cell__voi"} <= criteria
    assert {r["parameters"]["threshold"] for r in rows} == {0.1, 0.3}
    assert len(rows) == 2 * len(criteria)
    assert set(run_dir.load_best()) <= criteria


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
