"""Bad-input matrix: every case through the Python API and through the ``dacapo`` CLI.

Each case builds one bad input next to otherwise good data, then checks:

- API: a ValueError/TypeError whose message names the array/field and the problem;
- CLI (click's runner, in this process): exit code 2, one line ``error: ...`` (or, for
  ``verify``, the reasons), no traceback, the same message;
- nothing written: no run directory, no output array (the paths are listed per case).

One case also runs as a real ``dacapo`` process (no traceback on a real terminal).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from funlib.geometry import Coordinate
from funlib.persistence import prepare_ds

from dacapo.cli.main import cli
from dacapo.experiments.architectures import DummyArchitectureConfig
from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig
from dacapo.experiments.run_config import RunConfig
from dacapo.experiments.tasks import (
    AffinitiesTaskConfig,
    DistanceTaskConfig,
    OneHotTaskConfig,
    PretrainedTaskConfig,
)
from dacapo.experiments.trainer_config import TrainerConfig
from dacapo.io.config_yaml import from_yaml, to_yaml

VS = (8, 4, 4)
SHAPE = (16, 32, 32)


# --- data ------------------------------------------------------------------------------


def write(path: Path, data: np.ndarray, voxel_size=VS, offset=None, axis_names=None) -> str:
    """A zarr array with funlib metadata; returns its path."""
    dims = len(voxel_size)
    if axis_names is None:
        axis_names = (["c^"] if data.ndim == dims + 1 else []) + ["z", "y", "x"][-dims:]
    arr = prepare_ds(str(path), shape=data.shape, offset=Coordinate(offset or (0,) * dims),
                     voxel_size=Coordinate(voxel_size), axis_names=axis_names,
                     dtype=data.dtype, mode="w")
    if data.size:
        arr[arr.roi] = data
    return str(path)


def labels() -> np.ndarray:
    lab = np.zeros(SHAPE, np.uint32)
    lab[2:14, 3:16, 4:28] = 1
    lab[2:14, 16:29, 4:28] = 2
    return lab


def raw_of(lab: np.ndarray) -> np.ndarray:
    noise = np.random.default_rng(0).integers(0, 60, lab.shape)
    return ((lab > 0) * 150 + noise).astype(np.uint8)


def arch(dims: int = 3, channels_in: int = 1, channels_out: int = 1) -> DummyArchitectureConfig:
    shape = (8, 16, 16) if dims == 3 else (16, 16)
    return DummyArchitectureConfig("arch", num_in_channels=channels_in,
                                   num_out_channels=channels_out, input_shape=shape)


def distance(channels=("fg",)) -> DistanceTaskConfig:
    return DistanceTaskConfig("dist", channels=list(channels), clip_distance=40,
                              tol_distance=16, scale_factor=20)


def run_config(name: str, raw: str, gt: str, mask: str | None = None, task=None,
               architecture=None) -> RunConfig:
    ds = DatasetConfig("vol", raw, gt, mask)
    return RunConfig(name, task or distance(), architecture or arch(), DataSplitConfig([ds], []),
                     TrainerConfig(num_data_workers=0), num_iterations=1, validation_interval=0,
                     checkpoint_interval=1)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict:
    """Good arrays and a trained run (1 iteration) to apply."""
    from dacapo.training.loop import train_run

    base = tmp_path_factory.mktemp("good")
    lab = labels()
    paths = {
        "base": base,
        "raw": write(base / "data.zarr" / "raw", raw_of(lab)),
        "labels": write(base / "data.zarr" / "labels", lab),
        "fg": write(base / "data.zarr" / "fg", (lab > 0).astype(np.uint8)),
        "mask": write(base / "data.zarr" / "mask", np.ones(SHAPE, np.uint8)),
    }
    rc = run_config("trained", paths["raw"], paths["fg"], paths["mask"])
    assert rc.problems() == []
    train_run(rc, base / "runs", progress=False, validate=False)
    paths["run"] = str(base / "runs" / "trained")
    return paths


# --- cases -----------------------------------------------------------------------------


@dataclass
class Prepared:
    api: Callable[[], object]
    cli: list[str]
    untouched: list[Path]  # must not exist afterwards


@dataclass
class Case:
    id: str
    what: str  # the bad input, as a user would name it
    setup: Callable[[Path, dict], Prepared]
    match: str  # regex the message must contain (names the array/field and the problem)
    errors: tuple = (ValueError, TypeError)  # what the Python API raises


def train_case(d: Path, rc: RunConfig) -> Prepared:
    """Train ``rc`` (API) / ``dacapo train`` on its YAML (CLI); no run dir may appear."""
    from dacapo.training.loop import train_run

    config = d / "run.yaml"
    to_yaml(rc, config)
    root = d / "runs"
    return Prepared(lambda: train_run(rc, root, progress=False), ["train", str(config), "--root",
                    str(root), "--quiet"], [root])


def apply_case(d: Path, run: str, input_: str, output: str | None = None, **kw) -> Prepared:
    """`apply_run` (API) / ``dacapo apply`` (CLI); the output container must not appear."""
    from dacapo.pipeline.apply import apply_run
    from dacapo.pipeline.predict_options import PredictOptions

    output = output or str(d / "out.zarr" / "seg")
    args = ["apply", run, "--input", input_, "--output", output, "--quiet", "--workers", "1"]
    for k, v in kw.items():
        args += [f"--{k}", str(v)]
    container = Path(output).parent if Path(output).parent.suffix == ".zarr" else Path(output)
    return Prepared(
        lambda: apply_run(run, input_, output, PredictOptions(num_workers=1, progress=False),
                          **kw),
        args, [] if container.exists() else [container],
    )


def _bad_raw(d, g, value):
    raw = raw_of(labels()).astype(np.float32)
    raw[5, 6, 7] = value
    return train_case(d, run_config("r", write(d / "d.zarr" / "raw", raw), g["fg"]))


def _gt_case(d, g, gt: np.ndarray, task, **kw):
    return train_case(d, run_config("r", g["raw"], write(d / "d.zarr" / "gt", gt, **kw), task=task))


def _mask_case(d, g, mask: np.ndarray, **kw):
    return train_case(d, run_config("r", g["raw"], g["fg"], write(d / "d.zarr" / "mask", mask, **kw)))


def _typo(d, g):
    rc = run_config("r", g["raw"], g["fg"])
    config = d / "run.yaml"
    text = to_yaml(rc).replace("learning_rate:", "learning_rat:")
    config.write_text(text)
    return Prepared(lambda: from_yaml(config, RunConfig), ["train", str(config), "--root",
                    str(d / "runs"), "--quiet"], [d / "runs"])


def _pretrained_wrong_arch(d, g):
    import torch

    other = distance().build().create_model(arch(channels_in=2))
    weights = d / "other.pt"
    torch.save({"model": other.state_dict()}, weights)
    task = PretrainedTaskConfig("pre", sub_task_config=distance(), weights=weights)
    return train_case(d, run_config("r", g["raw"], g["fg"], task=task))


def _four_d(d, g):
    raw = np.zeros((2, *SHAPE), np.uint8)
    path = write(d / "d.zarr" / "raw4d", raw, voxel_size=(1, *VS), axis_names=["t", "z", "y", "x"])
    return train_case(d, run_config("r", path, g["fg"]))


def _readonly_output(d, g):
    target = d / "locked"
    target.mkdir()
    output = str(_lock(target) / "out.zarr" / "seg")
    return apply_case(d, g["run"], g["raw"], output)


def _lock(folder: Path) -> Path:
    """Make ``folder`` unwritable, even for root when possible; returns a locked folder."""
    folder.chmod(0o555)
    if os.geteuid() != 0:
        return folder
    if shutil.which("chattr") and subprocess.run(
        ["chattr", "+i", str(folder)], capture_output=True
    ).returncode == 0:
        return folder
    return Path("/sys")  # sysfs refuses new entries, also to root


def _huge_input(d, g):
    # a raw whose prediction (float32) needs far more space than any disk here: zarr stores
    # only its metadata (no chunk written)
    prepare_ds(str(d / "big.zarr" / "raw"), shape=(2**16, 2**17, 2**17), offset=(0, 0, 0),
               voxel_size=VS, axis_names=["z", "y", "x"], dtype=np.uint8,
               chunk_shape=(64, 256, 256), mode="w")
    return apply_case(d, g["run"], str(d / "big.zarr" / "raw"))


def _apply_nan(d, g):
    raw = raw_of(labels()).astype(np.float32)
    raw[3, 3, 3] = np.nan
    return apply_case(d, g["run"], write(d / "in.zarr" / "raw", raw))


def _apply_channels(d, g):
    raw = np.zeros((2, *SHAPE), np.uint8)
    return apply_case(d, g["run"], write(d / "in.zarr" / "raw", raw))


def _output_is_file(d, g):
    (d / "out.zarr").write_text("not a folder")
    return apply_case(d, g["run"], g["raw"], str(d / "out.zarr" / "seg"))


CASES = [
    Case("raw_nan", "raw with NaN", lambda d, g: _bad_raw(d, g, np.nan),
         r"dataset 'vol': raw: 1 non-finite value\(s\) \(1 NaN, 0 Inf\), first at voxel \(5, 6, 7\)"),
    Case("raw_inf", "raw with Inf", lambda d, g: _bad_raw(d, g, np.inf),
         r"dataset 'vol': raw: 1 non-finite value\(s\) \(0 NaN, 1 Inf\)"),
    Case("gt_float_instance", "float GT for an instance task",
         lambda d, g: _gt_case(d, g, labels().astype(np.float32),
                               AffinitiesTaskConfig("aff", neighborhood=[(1, 0, 0), (0, 1, 0)])),
         r"dataset 'vol': gt: dtype float32 is not an integer type; instance labels"),
    Case("onehot_label_too_big", "labels >= number of classes (OneHot)",
         lambda d, g: _gt_case(d, g, labels() + 1, OneHotTaskConfig("oh", classes=["a", "b", "c"])),
         r"dataset 'vol': gt: label 3 >= number of classes 3"),
    Case("negative_labels", "negative labels",
         lambda d, g: _gt_case(d, g, labels().astype(np.int32) - 1, distance()),
         r"dataset 'vol': gt: negative label -1 \(labels must be >= 0"),
    Case("gt_nan", "GT with NaN",
         lambda d, g: _gt_case(d, g, np.where(labels() > 1, np.nan, labels()).astype(np.float32),
                               distance()),
         r"dataset 'vol': gt: \d+ non-finite value\(s\) \(\d+ NaN"),
    Case("empty_gt", "empty GT array",
         lambda d, g: _gt_case(d, g, np.zeros((0, 32, 32), np.uint8), distance()),
         r"dataset 'vol': gt: empty array \(shape \(0, 32, 32\)\)"),
    Case("mask_all_zero", "mask with nothing labelled",
         lambda d, g: _mask_case(d, g, np.zeros(SHAPE, np.uint8)),
         r"dataset 'vol': mask: no non-zero voxel"),
    Case("mask_other_shape", "mask of another shape",
         lambda d, g: _mask_case(d, g, np.ones((16, 24, 32), np.uint8)),
         r"dataset 'vol': mask: shape \(16, 24, 32\) .*differs from gt shape \(16, 32, 32\)"),
    Case("mask_other_voxel_size", "mask of another voxel size",
         lambda d, g: _mask_case(d, g, np.ones(SHAPE, np.uint8), voxel_size=(8, 8, 8)),
         r"dataset 'vol'.*mask \(8, 8, 8\) vs gt \(8, 4, 4\)"),
    Case("no_overlap", "raw and GT that don't overlap",
         lambda d, g: _gt_case(d, g, labels(), distance(), offset=(1000, 0, 0)),
         r"dataset 'vol': raw ROI .* and gt ROI .* do not overlap"),
    Case("voxel_sizes_dont_divide", "voxel sizes that don't divide",
         lambda d, g: _gt_case(d, g, labels(), distance(), voxel_size=(12, 4, 4)),
         r"dataset 'vol': gt: voxel size \(12, 4, 4\) and raw voxel size \(8, 4, 4\) do not "
         r"divide"),
    Case("four_d_raw", "a 4D array where 3D is expected", _four_d,
         r"dataset 'vol': raw: .* has 4 spatial dims .*expected 2 or 3"),
    Case("arch_2d_data_3d", "3D data for a 2D architecture",
         lambda d, g: train_case(d, run_config("r", g["raw"], g["fg"], architecture=arch(2))),
         r"dataset 'vol': raw: 3 spatial dimensions where 2 are expected"),
    Case("neighborhood_2d", "2D neighborhood on 3D data",
         lambda d, g: _gt_case(d, g, labels(), AffinitiesTaskConfig(
             "aff", neighborhood=[(1, 0), (0, 1)])),
         r"dataset 'vol': task 'aff': neighborhood offsets are 2D but the data are 3D"),
    Case("gt_channels", "channels count != GT channels",
         lambda d, g: _gt_case(d, g, np.stack([labels() > 0, labels() > 1]).astype(np.uint8),
                               distance(["a", "b", "c"])),
         r"dataset 'vol': gt: 2 channels .* but the task has 3 channel\(s\) \['a', 'b', 'c'\]"),
    Case("class_id_gt_channels", "class ids beyond the task's channels",
         lambda d, g: _gt_case(d, g, labels() * 3, distance(["a", "b"])),
         r"dataset 'vol': gt: class id 6 > number of channels 2"),
    Case("config_typo", "a typo in a config field name", _typo,
         r"learning_rat"),
    Case("pretrained_other_arch", "weights of another architecture", _pretrained_wrong_arch,
         r"weights: .*other\.pt does not fit architecture 'arch'.*shape mismatch"),
    Case("raw_missing", "a raw path that does not exist",
         lambda d, g: train_case(d, run_config("r", str(d / "nope.zarr" / "raw"), g["fg"])),
         r"dataset 'vol': raw: no array at '.*nope\.zarr/raw'"),
    Case("output_is_input", "an output path equal to an input path",
         lambda d, g: apply_case(d, g["run"], g["raw"], g["raw"]),
         r"output '.*data\.zarr/raw' is the input array"),
    Case("output_readonly", "a read-only output location", _readonly_output,
         r"output: cannot write '.*out\.zarr/seg': '[^']+'(:)? (is not writable|is on a read-only"
         r"|Permission denied|Operation not permitted)"),
    Case("output_full", "an output location without enough space", _huge_input,
         r"output: not enough space for '.*out\.zarr/seg_prediction': .* GB free"),
    Case("output_is_file", "an output container that is a file", _output_is_file,
         r"output: cannot create '.*out\.zarr/seg': '.*out\.zarr' is a file"),
    Case("apply_raw_nan", "apply to a raw with NaN", _apply_nan,
         r"raw '.*in\.zarr/raw': 1 non-finite value\(s\) \(1 NaN, 0 Inf\), first at voxel \(3, 3, 3\)"),
    Case("apply_raw_channels", "apply to a raw with the wrong channel count", _apply_channels,
         r"raw '.*in\.zarr/raw' has shape \(2, 16, 32, 32\); the model expects 1 input channel"),
    Case("apply_unknown_criterion", "an unknown criterion",
         lambda d, g: apply_case(d, g["run"], g["raw"], criterion="nope"),
         r"criterion 'nope' is not one of this task's"),
    Case("apply_missing_checkpoint", "a checkpoint that does not exist",
         lambda d, g: apply_case(d, g["run"], g["raw"], iteration=99),
         r"no checkpoint for iteration 99", (FileNotFoundError,)),
]


@pytest.fixture
def case_dir(tmp_path):
    yield tmp_path
    for p in [tmp_path, *tmp_path.rglob("*")]:  # undo _lock
        if p.is_dir() and not os.access(p, os.W_OK) or p.name == "locked":
            if shutil.which("chattr"):
                subprocess.run(["chattr", "-i", str(p)], capture_output=True)
            p.chmod(0o755)
    shutil.rmtree(tmp_path, ignore_errors=True)


def _check_untouched(prepared: Prepared) -> None:
    for p in prepared.untouched:
        assert not p.exists(), f"{p} was created for a rejected input"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_python_api(case, good, case_dir):
    prepared = case.setup(case_dir, good)
    with pytest.raises(case.errors) as info:
        prepared.api()
    assert re.search(case.match, str(info.value)), str(info.value)
    _check_untouched(prepared)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli(case, good, case_dir):
    prepared = case.setup(case_dir, good)
    result = CliRunner().invoke(cli, prepared.cli)
    err = result.stderr
    assert result.exit_code == 2, (result.exit_code, err, result.exception)
    assert "Traceback" not in result.output + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(case.match, err), err
    _check_untouched(prepared)


def test_matrix_counts_twenty_distinct_cases():
    assert len(CASES) >= 20
    assert len({c.id for c in CASES}) == len({c.what for c in CASES}) == len(CASES)
    assert len({c.match for c in CASES}) == len(CASES)


def test_verify_lists_the_problem(good, case_dir):
    prepared = CASES[0].setup(case_dir, good)
    config = prepared.cli[1]
    result = CliRunner().invoke(cli, ["verify", config])
    assert result.exit_code == 2
    assert "invalid" in result.stderr and re.search(CASES[0].match, result.stderr)


def test_real_process_prints_one_line(good, case_dir, dacapo_cli):
    prepared = _bad_raw(case_dir, good, np.nan)
    proc = dacapo_cli(*prepared.cli)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: dataset 'vol'")
    assert "Traceback" not in proc.stderr + proc.stdout
    _check_untouched(prepared)
