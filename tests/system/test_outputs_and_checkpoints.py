"""Review fixes: an output inside the raw's OME-NGFF group is refused by apply and
predict; ``--workers 0`` means "in this process" for apply as for validate; a corrupt
checkpoint gives one line (validate/apply) or an older one (resume)."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from dacapo.cli.main import cli
from dacapo.errors import InputError
from dacapo.io.arrays import open_array
from dacapo.pipeline.apply import apply_run
from dacapo.pipeline.predict import predict
from dacapo.pipeline.predict_options import PredictOptions
from dacapo.runs.run_dir import RunDir
from dacapo.training.loop import train_run


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data, tiny_run, write_array):
    """A tiny Distance run (6 iterations, checkpoints 0, 3, 6) and an OME-NGFF raw."""
    root = tmp_path_factory.mktemp("fixes")
    container = tiny_data(root)
    rc = tiny_run(container)
    run_dir = train_run(rc, root / "runs", progress=False, validate=False)
    raw = open_array(container / "validate" / "raw")
    group = root / "ome.zarr" / "raw"
    zarr.open_group(str(group), mode="w").attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": n, "type": "space", "unit": "nanometer"} for n in "zyx"],
        "datasets": [{"path": "s0", "coordinateTransformations": [
            {"type": "scale", "scale": list(raw.voxel_size)}]}],
    }]}
    write_array(group / "s0", np.asarray(raw[raw.roi]), raw.voxel_size)
    return rc, run_dir, group


def test_apply_and_predict_refuse_an_output_inside_the_raw_group(trained):
    rc, run_dir, group = trained
    assert open_array(group).voxel_size == open_array(group / "s0").voxel_size  # a valid raw
    inside = group / "segmentation"
    with pytest.raises(InputError, match="lies inside the input array"):
        apply_run(run_dir.path, group, inside, PredictOptions(num_workers=0, progress=False),
                  iteration=6)
    with pytest.raises(InputError, match="lies inside the raw array"):
        predict(rc, run_dir.checkpoint_path(6), group, inside,
                PredictOptions(num_workers=0, progress=False))
    assert not inside.exists()


def test_apply_with_zero_workers_runs_in_this_process(trained, tmp_path):
    _, run_dir, group = trained
    out = apply_run(run_dir.path, group, tmp_path / "out.zarr" / "seg",
                    PredictOptions(num_workers=0, progress=False), iteration=6)
    assert out.roi.size > 0
    # no daisy worker ran (they log to worker_<n>.out/.err); the prediction in this
    # process still leaves the runner's done-markers, so a killed apply resumes
    logs = run_dir.logs / "apply"
    assert not list(logs.rglob("worker_*")), sorted(str(p) for p in logs.rglob("*"))
    assert [p.name for p in logs.rglob("done")] == ["done"]
    assert list(next(logs.rglob("done")).iterdir())


def test_corrupt_checkpoint(trained, tmp_path, caplog):
    rc, run_dir, _ = trained
    copy = RunDir(tmp_path / "runs" / rc.name)
    shutil.copytree(run_dir.path, copy.path)
    latest = copy.checkpoint_path(6)
    latest.write_bytes(latest.read_bytes()[:100])  # what a failed copy or a full disk leaves

    for args in (["validate", str(copy.path), "--iteration", "6", "--quiet"],
                 ["apply", str(copy.path), "--iteration", "6", "--workers", "0", "--quiet",
                  "--input", str(trained[2]), "--output", str(tmp_path / "o.zarr" / "seg")]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: checkpoint "), result.output
        assert str(latest) in lines[0] and "corrupt or truncated" in lines[0]

    with caplog.at_level(logging.WARNING, logger="dacapo"):
        train_run(rc, tmp_path / "runs", progress=False, validate=False)  # resumes from 3
    assert any(str(latest) in r.getMessage() and "older checkpoint" in r.getMessage()
               for r in caplog.records)
    assert copy.load_checkpoint(6)["iteration"] == 6  # rewritten, intact
    stats = copy.training_stats()
    assert [int(s["iteration"]) for s in stats] == list(range(1, 7))
