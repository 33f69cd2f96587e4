"""Blockwise apply (workers, worker command; the checkpoint and parameters it chooses) of the
tiny trained run (`trained`, tests/pipeline/conftest.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dacapo.io.ome_write import open_ds  # outputs are OME-NGFF images (level s0)
from dacapo.pipeline.apply import apply_run
from dacapo.pipeline.predict import predict
from dacapo.pipeline.predict_options import PredictOptions
from dacapo.runs.run_dir import RunDir


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


def test_apply_chooses_iteration_and_criterion(trained, tmp_path, caplog):
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
    # the one line: no warning about the parameters of a checkpoint that is not there
    assert not [r for r in caplog.records if "no validation scores" in r.getMessage()]
    assert RunDir(run_dir.path).latest_checkpoint() == 8


def test_apply_refuses_an_existing_array_before_writing(trained, tmp_path, write_array):
    # e.g. the user's labels given as the output: refused before the prediction is written
    _, run_dir, container = trained
    write_array(tmp_path / "c.zarr" / "labels", np.ones((4, 4, 4), np.uint16), (4, 4, 4))
    with pytest.raises(ValueError, match="'labels_prediction' beside it.*choose another"):
        apply_run(run_dir.path, container / "validate" / "raw", tmp_path / "c.zarr" / "labels")
    assert not (tmp_path / "c.zarr" / "labels_prediction").exists()


def test_apply_names_an_input_unlike_the_training_raw(trained, tmp_path, write_array,
                                                      dacapo_cli):
    import shutil

    import attr

    from dacapo.experiments.normalization import NormalizationConfig, with_statistics

    rc, run_dir, container = trained
    copy = RunDir(tmp_path / "run")  # the run, mapping raw by percentiles of its training raw
    shutil.copytree(run_dir.path, copy.path)
    copy.save_config(with_statistics(attr.evolve(rc, normalization=NormalizationConfig())))
    raw = open_ds(str(container / "validate" / "raw"), mode="r")
    write_array(tmp_path / "x.zarr" / "raw", np.asarray(raw[raw.roi]).astype(np.uint16) * 256,
                tuple(raw.voxel_size), tuple(raw.roi.offset))
    result = dacapo_cli("apply", str(copy.path), "--input", str(tmp_path / "x.zarr" / "raw"),
                        "--output", str(tmp_path / "o.zarr" / "seg"), "--quiet")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "intensity spread" in line]
    norm = copy.load_config().normalization
    lo, hi = np.percentile(np.asarray(raw[raw.roi], np.float64) * 256, [0.5, 99.5])
    spread = (hi - lo) / (norm.high - norm.low)  # ~256: the training and validation raw alike
    assert len(lines) == 1 and f"is {spread:.3g}x the training raw's" in lines[0], result.stderr


def test_apply_says_a_bad_input_before_its_notice(trained, tmp_path, write_array, dacapo_cli):
    """At default verbosity the notice ("applying ... checkpoint ...") follows the input's
    checks: a raw with a NaN gives its one error line and no notice before it."""
    rc, run_dir, container = trained
    raw = open_ds(str(container / "validate" / "raw"), mode="r")
    data = np.asarray(raw[raw.roi]).astype(np.float32)
    data[1, 2, 3] = np.nan
    bad = tmp_path / "nan.zarr" / "raw"
    write_array(bad, data, tuple(raw.voxel_size), tuple(raw.roi.offset))
    result = dacapo_cli("apply", str(run_dir.path), "--input", str(bad),
                        "--output", str(tmp_path / "o.zarr" / "seg"))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "applying" not in result.stderr + result.stdout, result.stderr
    assert f"raw {str(bad)!r}: 1 non-finite value(s) (1 NaN, 0 Inf), first at voxel (1, 2, 3)" \
        in lines[0], lines
    assert not (tmp_path / "o.zarr").exists()
