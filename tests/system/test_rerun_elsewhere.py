"""``dacapo train`` of the same run from another directory: relative data paths that name
the same arrays are the same run (it resumes); other arrays are refused, naming the field
and both paths."""

from __future__ import annotations

import shutil

import attr
from click.testing import CliRunner

from dacapo.cli.main import cli
from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig
from dacapo.io.config_yaml import to_yaml


def _train(tmp_path, tiny_run, prefix: str, num_iterations: int):
    """``dacapo train`` of the run on ``<prefix>data/demo.zarr`` from the current dir."""
    split = DataSplitConfig([DatasetConfig("train", f"{prefix}data/demo.zarr/train/raw",
                                           f"{prefix}data/demo.zarr/train/fg")], [])
    rc = tiny_run(tmp_path, name="elsewhere", datasplit_config=split)
    config = tmp_path / f"run{num_iterations}.yaml"
    to_yaml(attr.evolve(rc, num_iterations=num_iterations, checkpoint_interval=1), config)
    return CliRunner().invoke(cli, ["train", str(config), "--root", str(tmp_path / "runs"),
                                    "--quiet", "--no-validate"])


def test_the_same_run_from_another_directory_resumes(tmp_path, tiny_data, tiny_run,
                                                     monkeypatch):
    tiny_data(tmp_path)  # tmp_path/data/demo.zarr
    monkeypatch.chdir(tmp_path)
    result = _train(tmp_path, tiny_run, "", 1)
    assert result.exit_code == 0, result.output
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    # the same arrays: stored as <tmp>/data/..., now given as <tmp>/sub/../data/...
    # (was refused: 'holds a run with a different datasplit_config')
    result = _train(tmp_path, tiny_run, "../", 2)
    assert result.exit_code == 0, result.stderr
    stats = (tmp_path / "runs" / "elsewhere" / "training_stats.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in stats[1:]] == ["1", "2"]  # resumed after 1
    # a copy of the data is other arrays
    shutil.copytree(tmp_path / "data", tmp_path / "sub" / "data")
    result = _train(tmp_path, tiny_run, "", 2)
    assert result.exit_code == 2
    here = tmp_path.resolve()
    assert result.stderr.strip() == (
        f"error: run directory {str(tmp_path / 'runs' / 'elsewhere')!r} holds a run with a "
        f"different datasplit_config.train[0].raw: '{here}/data/demo.zarr/train/raw' there, "
        f"'{here}/sub/data/demo.zarr/train/raw' in this config; choose another run name or "
        "root, or delete the folder")
