"""Wrong paths given to ``dacapo plan``, ``apply`` and ``validate`` (`dacapo.cli.input_paths`):
one line naming the path and the problem, exit code 2, nothing written; ``plan -o`` into a
new folder creates it."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from dacapo.cli.main import cli
from dacapo.tools.convert_collection import convert_collection


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A folder of two labelled 2D TIFF images and its collection ``coll.zarr``."""
    root = tmp_path_factory.mktemp("paths")
    tiffs = root / "images"
    tiffs.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        labels = np.zeros((48, 48), np.uint16)
        labels[8:20, 8:20], labels[28:40, 24:44] = 1, 2
        raw = (labels > 0) * 120 + rng.integers(0, 40, labels.shape)
        tifffile.imwrite(tiffs / f"{name}_raw.tif", raw.astype(np.uint8))
        tifffile.imwrite(tiffs / f"{name}_labels.tif", labels)
    convert_collection(tiffs, root / "coll.zarr", (4, 4))
    return root


def _error(args: list[str], cwd) -> str:
    """The one error line of a command that must fail with exit code 2."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0].removeprefix("error: ")


PLAN = ["--task", "inner_distance", "--no-measure", "-o", "p.yaml"]


def test_plan_names_a_missing_path(data):
    assert _error(["plan", "nucleii.zarr", *PLAN], data) == "plan: 'nucleii.zarr' does not exist"
    assert _error(["plan", "nope.zarr/gt", "--raw", "coll.zarr/a/raw", *PLAN], data) == \
        "plan: 'nope.zarr/gt' does not exist"
    assert not (data / "p.yaml").exists()


def test_plan_of_a_tiff_folder_says_convert_it(data):
    line = _error(["plan", "images", *PLAN], data)
    assert line == ("plan: 'images' is a folder of TIFFs: run 'dacapo convert images OUT.zarr "
                    "--collection --voxel-size ...' first and plan OUT.zarr")
    line = _error(["plan", "coll.zarr/a/labels", "--raw", "images/a_raw.tif", *PLAN], data)
    assert line.startswith("plan: --raw: 'images/a_raw.tif' is a TIFF, not a zarr array: "
                           "convert it first (dacapo convert")


def test_plan_of_a_collection_with_raw(data):
    line = _error(["plan", "coll.zarr", "--raw", "coll.zarr/a/raw", *PLAN], data)
    assert line == "plan: 'coll.zarr' is a collection: give it without --raw"


def test_plan_creates_the_output_folder(data, monkeypatch):
    monkeypatch.chdir(data)
    result = CliRunner().invoke(cli, ["plan", "coll.zarr", "--task", "inner_distance",
                                      "--no-measure", "--minutes", "0.5",
                                      "-o", "new/sub/p.yaml"])
    assert result.exit_code == 0, result.output
    assert "wrote new/sub/p.yaml" in result.output and (data / "new/sub/p.yaml").is_file()


def test_apply_to_a_tiff_says_convert_it(data, tmp_path, tiny_run):
    from dacapo.io.config_yaml import to_yaml

    (tmp_path / "run.yaml").write_text(to_yaml(tiny_run(data / "coll.zarr")))
    line = _error(["apply", str(tmp_path), "--input", "images/a_raw.tif",
                   "--output", "out.zarr/seg"], data)
    assert line == ("--input: 'images/a_raw.tif' is a TIFF, not a zarr array: convert it first "
                    "(dacapo convert images/a_raw.tif OUT.zarr/raw --voxel-size ...)")
    line = _error(["apply", str(tmp_path), "--input", "images", "--output", "out.zarr/seg"], data)
    assert line.startswith("--input: 'images' is a folder of TIFFs, not a zarr array: convert "
                           "it first (dacapo convert images OUT.zarr --collection")
    line = _error(["apply", str(tmp_path), "--input", "images/c_raw.tif",
                   "--output", "out.zarr/seg"], data)
    assert line == "--input: 'images/c_raw.tif' does not exist"
    assert not (data / "out.zarr").exists()


def test_a_missing_run_directory(data):
    for args in (["validate", "runs/nuclei"],
                 ["apply", "runs/nuclei", "--input", "coll.zarr/a/raw", "--output", "o.zarr/s"]):
        assert _error(args, data) == "run directory 'runs/nuclei' does not exist"
    assert not (data / "runs").exists() and not (data / "o.zarr").exists()
    # a folder that is not a run directory: said before the input is looked at
    assert _error(["apply", "images", "--input", "nope", "--output", "o.zarr/s"], data) == \
        "run directory 'images': no run.yaml in it"
