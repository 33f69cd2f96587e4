"""Validation (scores, best.json) and blockwise apply (workers, worker command)."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from dacapo.cli.main import cli
from dacapo.io.ome_write import open_ds  # outputs are OME-NGFF images (level s0)
from dacapo.pipeline.apply import apply_run
from dacapo.pipeline.predict import predict
from dacapo.pipeline.predict_options import PredictOptions
from dacapo.pipeline.validate import validate_run
from dacapo.runs.run_dir import RunDir
from dacapo.runs.scores import format_table
from dacapo.training.loop import train_run

THRESHOLDS = [-0.5, -0.25, 0.0, 0.25, 0.5]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data, tiny_run):
    """A tiny Distance run, 8 iterations, validated at 4 and 8 (in-process prediction)."""
    root = tmp_path_factory.mktemp("pipeline")
    container = tiny_data(root)
    rc = tiny_run(container, num_iterations=8, validation_interval=4, checkpoint_interval=4)
    run_dir = train_run(rc, root / "runs", progress=False)
    return rc, run_dir, container


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


def test_apply_one_two_workers_and_worker_command_identical(trained, tmp_path, dacapo_cli):
    rc, run_dir, container = trained
    raw = container / "validate" / "raw"
    out1 = apply_run(run_dir.path, raw, tmp_path / "a.zarr" / "seg",
                     PredictOptions(num_workers=1, progress=False))
    # 2 workers for the prediction and (in_memory_limit=0) the post-processing
    out2 = apply_run(run_dir.path, raw, tmp_path / "b.zarr" / "seg",
                     PredictOptions(num_workers=2, progress=False), in_memory_limit=0)
    result = dacapo_cli(
        "apply", str(run_dir.path), "--input", str(raw), "--output",
        str(tmp_path / "c.zarr" / "seg"), "--workers", "2", "--quiet",
        "--worker-command", "sh -c {quoted_command}",
    )
    assert result.returncode == 0, result.stderr
    out3 = open_ds(str(tmp_path / "c.zarr" / "seg"), mode="r")
    a, b, c = (o[o.roi] for o in (out1, out2, out3))
    assert out1.roi == out2.roi == out3.roi
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    # the predictions beside the outputs are bit-identical too
    preds = [open_ds(str(tmp_path / f"{n}.zarr" / "seg_prediction"), mode="r") for n in "abc"]
    p = preds[0][preds[0].roi]
    assert p.std() > 0
    for other in preds[1:]:
        np.testing.assert_array_equal(p, other[other.roi])
    # ... and equal to a prediction in this process; it covers the whole raw (reflect padding)
    here = predict(rc, run_dir.checkpoint_path(run_dir.load_best()["cell__dice"]["iteration"]),
                   raw, tmp_path / "p.zarr" / "here", PredictOptions(num_workers=0, progress=False))
    assert here.roi == preds[0].roi
    np.testing.assert_allclose(here[here.roi], p, rtol=0, atol=1e-6)
    raw_roi = open_ds(str(raw), mode="r").roi
    assert raw_roi.contains(here.roi)
    assert here.roi.grow(here.voxel_size * 8, here.voxel_size * 8).contains(raw_roi)
    # the worker command really started the workers
    logs = list((run_dir.logs / "apply").rglob("worker_spec.pkl"))
    assert logs
    # default choice: best checkpoint and threshold of cell__dice; the result equals the
    # validation's segmentation of that iteration and threshold
    best = run_dir.load_best()["cell__dice"]
    folder = run_dir.predictions / f"{best['iteration']:08d}" / "validate.zarr"
    seg = open_ds(str(folder / f"segmentation_{best['parameters']['id']}"), mode="r")
    np.testing.assert_array_equal(a, seg[out1.roi])


def test_apply_chooses_iteration_and_criterion(trained, tmp_path):
    from dacapo.runs.scores import choose_checkpoint_and_parameters

    rc, run_dir, _ = trained
    task = rc.task_config.build()
    rows = run_dir.validation_scores()
    it, params = choose_checkpoint_and_parameters(run_dir, task, 4, "cell__hausdorff")
    sel = [r for r in rows if r["iteration"] == 4 and r["criterion"] == "cell__hausdorff"
           and not math.isnan(r["value"])]
    assert it == 4
    assert params.threshold == min(sel, key=lambda r: r["value"])["parameters"]["threshold"]
    with pytest.raises(ValueError, match="criterion 'nope'"):
        choose_checkpoint_and_parameters(run_dir, task, None, "nope")
    with pytest.raises(FileNotFoundError, match="no checkpoint for iteration 5"):
        apply_run(run_dir.path, "x", tmp_path / "o.zarr" / "s", iteration=5)
    assert RunDir(run_dir.path).latest_checkpoint() == 8


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
