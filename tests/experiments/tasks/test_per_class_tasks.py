"""Per-class post-processing (`instance_classes`) and the CellMap evaluator of the one-hot,
distance and hot-distance tasks: each class against brute-force references (argmax /
threshold by numpy, components by scipy.ndimage.label), the zipped sweep, blockwise output
equal to the in-memory one with ids unique across blocks, the numbers flowing unchanged
into validation_scores.csv and best.json, each class's best joined for apply, bad config."""

from __future__ import annotations

import json

import attr
import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array
from scipy import ndimage

from dacapo.errors import ConfigError
from dacapo.experiments.tasks import DistanceTaskConfig, HotDistanceTaskConfig, OneHotTaskConfig
from dacapo.io.arrays import open_array, prepare_zarr
from dacapo.ops.cellmap_metrics import overall_scores, score_instance, score_semantic
from dacapo.runs.class_parameters import compose_class_parameters
from dacapo.runs.run_dir import RunDir
from dacapo.runs.scores import parameters_dict, update_best
from tests.references import same_partition

VOXEL = Coordinate(8, 4, 4)
CLASSES = ["bg", "cell", "membrane"]


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """Class-id GT (bg 0, cell 1 in four boxes, membrane 2 in a slab) and a one-hot-like
    prediction of it with specks of 'cell' (1-2 voxels) in the background."""
    gt = np.zeros((6, 20, 24), np.uint8)
    gt[:, 17:, :] = 2
    for z, y, x in [(0, 1, 1), (1, 2, 12), (2, 9, 3), (1, 9, 15)]:
        gt[z:z + 3, y:y + 5, x:x + 6] = 1
    gt[2:5, 2:6, 9:12] = 1  # extends the second box across x = 12 (a block face below)
    pred = np.eye(3, dtype=np.float32)[gt].transpose(3, 0, 1, 2) * 0.8 + 0.1
    for z, y, x in [(5, 0, 0), (5, 15, 22), (4, 14, 10), (0, 15, 0)]:
        pred[:, z, y, x] = (0.1, 0.8, 0.1)
    return gt, pred


def _array(data: np.ndarray) -> Array:
    names = (["c^"] if data.ndim == 4 else []) + ["z", "y", "x"]
    return Array(data, offset=VOXEL * 2, voxel_size=VOXEL, axis_names=names)


def _brute_components(mask: np.ndarray, min_size: int) -> np.ndarray:
    labels, n = ndimage.label(mask)
    sizes = ndimage.sum(mask, labels, range(n + 1))
    labels[sizes[labels] < min_size] = 0
    return labels


def _one_hot(**kwargs):
    config = OneHotTaskConfig("organelles", classes=CLASSES, instance_classes=["cell"],
                              instance_min_sizes=[0, 3, 10_000], **kwargs)
    return config.build()


def test_one_hot_sweep_is_zipped_and_each_class_matches_its_reference(tmp_path):
    task = _one_hot(class_thresholds=[0.6])
    gt, pred = _scene()
    sweep = task.parameters
    # cell: (argmax, then p > 0.6) x min sizes; the semantic classes: argmax, p > 0.6, then
    # the last repeated
    assert [(p.setting("cell").threshold, p.setting("cell").min_size) for p in sweep] == [
        (None, 0), (None, 3), (None, 10_000), (0.6, 0), (0.6, 3), (0.6, 10_000)]
    assert [p.setting("bg").threshold for p in sweep] == [None, 0.6, 0.6, 0.6, 0.6, 0.6]
    assert all(p.setting(c).kind == "semantic" for p in sweep for c in ("bg", "membrane"))
    task.post_processor.set_prediction(_array(pred))
    argmax = np.argmax(pred, axis=0)

    def mask(k, t):
        return argmax == k if t is None else pred[k] > t

    for p in sweep:
        out = task.post_processor.process(p, tmp_path / "seg.zarr" / f"s{p.id}")
        data = out[out.roi]
        assert data.shape == (3, *gt.shape) and out.roi == _array(gt).roi
        for k, c in ((0, "bg"), (2, "membrane")):
            np.testing.assert_array_equal(data[k], mask(k, p.setting(c).threshold))
        cell = _brute_components(mask(1, p.setting("cell").threshold), p.setting("cell").min_size)
        assert same_partition(data[1], cell)


def test_one_hot_prior_corrected_argmax_is_swept_with_class_fractions(tmp_path):
    fractions = [0.6, 0.1, 0.3]
    task = _one_hot(class_thresholds=[0.6], class_fractions=fractions, prior_corrections=[1.0])
    sweep = task.parameters
    assert [(p.setting("cell").threshold, p.setting("cell").prior) for p in sweep][::3] == [
        (None, 0.0), (None, 1.0), (0.6, 0.0)]
    assert [p.setting("bg").label for p in sweep[:3]] == ["argmax", "argmax prior=1", "mask t=0.6"]
    _, pred = _scene()
    pred[1, 3, 3, 3], pred[0, 3, 3, 3] = 0.5, 0.4  # cell by the argmax, bg once corrected
    task.post_processor.set_prediction(_array(pred))
    corrected = np.argmax(pred * np.array(fractions, np.float32)[:, None, None, None], axis=0)
    assert (corrected != np.argmax(pred, axis=0)).any()
    # set 1: the semantic classes corrected; set 3: cell corrected, min_size 0
    semantic = task.post_processor.process(sweep[1], tmp_path / "seg.zarr" / "s1")
    for k in (0, 2):
        np.testing.assert_array_equal(semantic[semantic.roi][k], corrected == k)
    cell = task.post_processor.process(sweep[3], tmp_path / "seg.zarr" / "s3")
    assert same_partition(cell[cell.roi][1], _brute_components(corrected == 1, 0))
    # plain cross-entropy (no balancing) or no fractions: the correction is not swept
    for kwargs in ({"class_fractions": fractions, "balance_classes": False}, {}):
        assert not any(p.setting("bg").prior for p in _one_hot(**kwargs).parameters)


@pytest.mark.parametrize("kwargs,message", [
    ({"class_fractions": [0.5, 0.5]}, "class_fractions: must be one fraction in"),
    ({"class_fractions": [0.5, 0.3, 0.2], "prior_corrections": [0.0]},
     "prior_corrections: every value must lie in \\(0, inf\\)"),
])
def test_one_hot_prior_fields_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OneHotTaskConfig("o", classes=CLASSES, instance_classes=[], **kwargs).build()


def test_one_hot_class_thresholds_are_probabilities():
    config = OneHotTaskConfig("o", classes=CLASSES, instance_classes=[],
                              class_thresholds=[0.5, 1.5])
    with pytest.raises(ValueError, match=r"class_thresholds: every value must lie in \(0, 1\)"):
        config.build()


@pytest.mark.parametrize("kind", ["distance", "hot"])
def test_distance_classes_threshold_and_components(tmp_path, kind):
    common = dict(clip_distance=40, tol_distance=8, thresholds=[-0.2, 0.3],
                  instance_classes=["mito"], instance_min_sizes=[0, 4])
    cls = DistanceTaskConfig if kind == "distance" else HotDistanceTaskConfig
    task = cls(name=kind, channels=["mito", "er"], **common).build()
    rng = np.random.default_rng(1)
    dist = ndimage.uniform_filter(rng.normal(size=(2, 6, 16, 16)), (0, 1, 3, 3)) * 4
    dist = np.tanh(dist).astype(np.float32)
    pred = dist if kind == "distance" else np.concatenate([dist > 0, dist]).astype(np.float32)
    sweep = task.parameters
    # mito: every (threshold, min_size) pair; er: its thresholds, then its last repeated
    assert [(p.setting("mito").threshold, p.setting("mito").min_size) for p in sweep] == [
        (-0.2, 0), (-0.2, 4), (0.3, 0), (0.3, 4)]
    assert [p.setting("er").threshold for p in sweep] == [-0.2, 0.3, 0.3, 0.3]
    task.post_processor.set_prediction(_array(pred))
    for p in sweep:
        data = task.post_processor.process(p, tmp_path / f"p{p.id}")
        data = data[data.roi]
        np.testing.assert_array_equal(data[1], dist[1] > p.setting("er").threshold)
        mito = _brute_components(dist[0] > p.setting("mito").threshold, p.setting("mito").min_size)
        assert same_partition(data[0], mito)


def _zarr_prediction(path, pred: np.ndarray) -> str:
    roi = Roi(VOXEL * 2, Coordinate(pred.shape[1:]) * VOXEL)
    out = prepare_zarr(path, total_roi=roi, voxel_size=VOXEL, dtype=pred.dtype,
                       num_channels=pred.shape[0])
    out[roi] = pred
    return str(path)


@pytest.mark.parametrize("prior", [False, True])
def test_blockwise_equals_in_memory_and_apply_writes_one_image_per_class(tmp_path, prior):
    """Two blocks along x (objects cross the face): the stitched ids are unique across
    blocks and give the same objects as in memory; apply's layout: <output>/<class>. Also
    with every class's argmax prior-corrected."""
    task = _one_hot(class_fractions=[0.6, 0.1, 0.3])
    gt, pred = _scene()
    post = task.post_processor
    parameters = task.parameters[1]
    if prior:
        pred[1, 3, 3, 3], pred[0, 3, 3, 3] = 0.5, 0.4  # the correction changes this voxel
        parameters = post.compose({c: attr.evolve(parameters.setting(c), prior=1.0)
                                   for c in CLASSES})
    post.set_prediction(_array(pred))
    memory = post.process(parameters, tmp_path / "memory.zarr" / "seg")
    memory = memory[memory.roi]
    post.set_prediction(_zarr_prediction(tmp_path / "pred.zarr" / "prediction", pred))
    block = Coordinate(6, 20, 12) * VOXEL
    blockwise = post.process(parameters, tmp_path / "blockwise.zarr" / "seg", block_size=block)
    blockwise = blockwise[blockwise.roi]
    np.testing.assert_array_equal(blockwise[[0, 2]] != 0, memory[[0, 2]] != 0)
    assert same_partition(blockwise[1], memory[1])
    written = post.process_classes(parameters, tmp_path / "out.zarr", block_size=block)
    assert list(written) == CLASSES
    for k, name in enumerate(CLASSES):
        image = open_array(tmp_path / "out.zarr" / name)  # an OME-NGFF image per class
        data = image[image.roi]
        if name == "cell":
            assert image.dtype == np.uint64 and same_partition(data, memory[1])
            left, right = data[..., :12], data[..., 12:]
            crossing = set(np.unique(left[..., -1])) & set(np.unique(right[..., 0])) - {0}
            assert crossing  # an object across the block face keeps one id
            only = (set(np.unique(left)) ^ set(np.unique(right))) - {0}
            assert only  # and ids of objects in one block are not reused in the other
        else:
            assert image.dtype == np.uint8
            np.testing.assert_array_equal(data, memory[k])


def _reference_values(seg: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """The evaluator's numbers from the CellMap kernels on references built here."""
    cell_truth = ndimage.label(gt == 1)[0]
    inst = score_instance(seg[1], cell_truth, tuple(VOXEL))
    sem = {k: score_semantic(seg[k], gt == k) for k in (0, 2)}
    values = {f"{CLASSES[k]}__iou": s.iou for k, s in sem.items()}
    values |= {f"{CLASSES[k]}__score": s.iou for k, s in sem.items()}
    values |= {"cell__f1": inst.f1, "cell__combined_score": inst.combined_score,
               "cell__score": inst.combined_score, "cell__num_predicted": inst.tp + inst.fp,
               "cell__iou": score_semantic(seg[1], gt == 1).iou}
    values |= overall_scores({"bg": sem[0], "cell": inst, "membrane": sem[2]})
    return values


def test_scores_flow_into_the_csv_and_best_json_and_apply_joins_each_class_best(tmp_path):
    task = _one_hot()
    gt, pred = _scene()
    post = task.post_processor
    post.set_prediction(_array(pred))
    run_dir = RunDir(tmp_path / "run").create()
    rows, expected = [], {}
    for p in task.parameters:
        seg = post.process(p, tmp_path / "seg.zarr" / f"s{p.id}")
        scores = task.evaluator.evaluate(seg, _array(gt))
        reference = _reference_values(seg[seg.roi], gt)
        for criterion, value in reference.items():
            assert scores[criterion] == pytest.approx(value, abs=1e-12), criterion
        assert np.isnan(scores["bg__f1"])  # instance metrics of a semantic class
        expected[p.id] = reference
        rows += [{"iteration": 5, "dataset": "crop", "parameters": parameters_dict(p),
                  "criterion": c, "value": float(scores[c]), "scored_roi": "", "gt_fraction": 1.0,
                  "degenerate": 0} for c in scores.criteria]
    run_dir.replace_validation_scores(5, rows)
    stored = {(r["parameters"]["id"], r["criterion"]): r["value"] for r in run_dir.validation_scores()}
    for pid, values in expected.items():
        for criterion, value in values.items():
            assert stored[(pid, criterion)] == pytest.approx(value, abs=1e-12)
    best = update_best(run_dir, task)
    assert json.loads(run_dir.best_file.read_text()) == best
    cell_best = max(expected, key=lambda i: expected[i]["cell__score"])
    assert best["cell__score"]["value"] == pytest.approx(expected[cell_best]["cell__score"])
    assert best["cell__score"]["parameters"] == parameters_dict(task.parameters[cell_best])
    assert "membrane__score" in best and "overall_score" in best
    assert expected[1]["cell__f1"] > expected[0]["cell__f1"]  # the specks removed
    joined = compose_class_parameters(run_dir, task, 5, task.parameters[0])
    assert joined.setting("cell") == task.parameters[cell_best].setting("cell")
    assert joined.setting("bg").kind == "semantic"


def test_a_class_not_in_the_task_is_a_one_line_config_error():
    with pytest.raises(ConfigError) as error:
        OneHotTaskConfig("t", classes=CLASSES, instance_classes=["mitochondrion"]).build()
    message = str(error.value)
    assert "instance_classes" in message and "'mitochondrion'" in message
    assert "\n" not in message
    problems = DistanceTaskConfig("d", channels=["mito"], clip_distance=1, tol_distance=1,
                                  instance_classes=["er"], instance_min_sizes=[-1]).problems()
    assert any("instance_classes" in p and "'er'" in p for p in problems)
    assert any(p.startswith("instance_min_sizes:") for p in problems)
