"""Validation: scores and best.json of the tiny trained run (`trained`,
tests/pipeline/conftest.py), ``dacapo validate``, blockwise evaluation, and a tiny
InnerDistance run validated with the ``instances`` post-processor."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from dacapo.cli.main import cli
from dacapo.experiments.tasks import InnerDistanceTaskConfig
from dacapo.io.ome_write import open_ds  # outputs are OME-NGFF images (level s0)
from dacapo.pipeline.predict_options import PredictOptions
from dacapo.pipeline.validate import validate_run
from dacapo.runs.run_dir import RunDir
from dacapo.runs.scores import format_table

THRESHOLDS = [-0.5, -0.25, 0.0, 0.25, 0.5]


def test_validation_scores_and_best(trained):
    rc, run_dir, container = trained
    rows = run_dir.validation_scores()
    task = rc.task_config.build()
    criteria = task.evaluation_scores.criteria
    assert len(rows) == 2 * len(THRESHOLDS) * len(criteria)
    assert {r["iteration"] for r in rows} == {4, 8}
    assert sorted({r["parameters"]["threshold"] for r in rows}) == THRESHOLDS

    # scores recomputed from the stored arrays with numpy: segmentation = prediction > t,
    # dice/precision/recall on the prediction ROI against the gt
    gt_all = zarr.open_array(str(container / "validate" / "fg"), mode="r")[:] > 0
    folder = run_dir.predictions / "00000008" / "validate.zarr"
    prediction = open_ds(str(folder / "prediction"), mode="r")
    pred = prediction[prediction.roi]
    gt = gt_all[(prediction.roi / prediction.voxel_size).to_slices()]
    for pid, t in enumerate(THRESHOLDS):
        seg = open_ds(str(folder / f"segmentation_{pid}"), mode="r")
        assert seg.roi == prediction.roi
        # one channel: prediction and segmentation are (z, y, x), no channel axis
        assert seg.shape == prediction.shape == gt.shape
        s = seg[seg.roi] > 0
        np.testing.assert_array_equal(s, pred > t)
        tp = np.sum(s & gt)
        empty = not s.any()  # metrics other than dice/jaccard are NaN on an empty mask
        expected = {
            "cell__dice": 2 * tp / (s.sum() + gt.sum()),
            "cell__precision": math.nan if empty else tp / s.sum(),
            "cell__recall": math.nan if empty else tp / gt.sum(),
        }
        for criterion, value in expected.items():
            (row,) = [r for r in rows if r["iteration"] == 8 and r["criterion"] == criterion
                      and r["parameters"]["id"] == pid]
            assert row["value"] == pytest.approx(value, nan_ok=True)

    # best.json: per criterion the best value over all rows, with its iteration/parameters
    best = json.loads(run_dir.best_file.read_text())
    assert set(best) == {c for c in criteria if task.evaluation_scores.store_best(c)}
    for criterion, entry in best.items():
        values = [r for r in rows if r["criterion"] == criterion and not math.isnan(r["value"])]
        hib = task.evaluation_scores.higher_is_better(criterion)
        top = (max if hib else min)(r["value"] for r in values)
        assert entry["value"] == pytest.approx(top)
        assert entry["higher_is_better"] == hib
        assert any(r["iteration"] == entry["iteration"] and r["parameters"] == entry["parameters"]
                   and r["value"] == pytest.approx(top) for r in values)
    for name in ("loss.png", "criteria.png"):
        assert (run_dir.plots / name).stat().st_size > 1000


def test_cli_validate_rewrites_an_iteration(trained):
    rc, run_dir, _ = trained
    before = [r for r in run_dir.validation_scores() if r["iteration"] == 4]
    result = CliRunner().invoke(cli, ["validate", str(run_dir.path), "--iteration", "4",
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    assert "validation at iteration 4" in result.output and "cell__dice" in result.output
    after = [r for r in run_dir.validation_scores() if r["iteration"] == 4]
    assert len(after) == len(before)  # replaced, not appended
    for a, b in zip(after, before):
        assert a["value"] == pytest.approx(b["value"], nan_ok=True)


def test_validation_scores_the_whole_gt_and_says_so(trained):
    rc, run_dir, container = trained
    gt = open_ds(str(container / "validate" / "fg"), mode="r")
    rows = run_dir.validation_scores()
    assert {r["scored_roi"] for r in rows} == {str(gt.roi)}  # reflect padding: every voxel
    assert {r["gt_fraction"] for r in rows} == {1.0}
    table = format_table(run_dir)
    assert f"scored {gt.roi} = 100.0% of the gt ROI" in table
    assert "parameters chosen by cell__dice" in table


def test_validation_evaluates_blockwise_above_the_in_memory_limit(trained, tmp_path):
    """Scores of a GT too big for memory (here: a limit of 0 voxels) are the in-memory ones."""
    rc, run_dir, container = trained
    copy = RunDir(tmp_path / rc.name)
    shutil.copytree(run_dir.path, copy.path)
    rows = validate_run(copy, 8, PredictOptions(progress=False), evaluate_in_memory=0)
    expected = {(r["criterion"], r["parameters"]["id"]): r["value"]
                for r in run_dir.validation_scores() if r["iteration"] == 8}
    got = {(r["criterion"], r["parameters"]["id"]): r["value"] for r in rows}
    assert got.keys() == expected.keys()
    unclipped = ("__hausdorff", "__mean_false_positive_distance",
                 "__mean_false_negative_distance", "__mean_false_distance")
    for (criterion, pid), value in expected.items():
        if criterion.endswith(unclipped) and math.isnan(got[criterion, pid]):
            continue  # exact only within the context (documented); NaN, never a wrong value
        assert got[criterion, pid] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True)
    assert any(not math.isnan(got[c, p]) for c, p in got if c == "cell__dice")
    assert (copy.logs / "validate" / "00000008" / "validate" / "evaluate").is_dir()


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


def test_every_dataset_is_checked_before_the_first_is_predicted(trained, tmp_path, write_array):
    import attr

    from dacapo.experiments.datasplits import DatasetConfig

    rc, run_dir, container = trained
    copy = RunDir(tmp_path / "run")
    shutil.copytree(run_dir.path, copy.path)
    shutil.rmtree(copy.predictions)
    write_array(tmp_path / "far.zarr" / "gt", np.ones((4, 4, 4), np.uint8), (16, 8, 8),
                offset=(16000, 8000, 8000))  # nowhere near the raw
    far = DatasetConfig("far", str(container / "validate" / "raw"), str(tmp_path / "far.zarr" / "gt"))
    split = attr.evolve(rc.datasplit_config, validate=[*rc.datasplit_config.validate, far])
    copy.save_config(attr.evolve(rc, datasplit_config=split))
    with pytest.raises(ValueError, match="dataset 'far': raw ROI .* do not overlap"):
        validate_run(copy, 8, PredictOptions(progress=False))
    assert not copy.predictions.exists()  # the first dataset was not predicted
