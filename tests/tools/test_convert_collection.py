"""`dacapo convert --collection`: the naming rule, images of different sizes kept apart, the
errors naming files, and a folder with labels files refused as a stack."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from dacapo.cli.tools_cmd import convert
from dacapo.errors import InputError
from dacapo.io.arrays import open_array
from dacapo.io.collection import collection_images, is_collection
from dacapo.tools.convert_collection import convert_collection, pair_files


def _tif(path, shape, dtype=np.uint8, value=1):
    tifffile.imwrite(path, np.full(shape, value, dtype))


def test_pairs_sizes_and_layout(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _tif(src / "a_raw.tif", (10, 12), value=7)
    _tif(src / "a_labels.tif", (10, 12), np.uint16, 3)
    _tif(src / "b.tiff", (6, 9), value=5)  # unlabelled, another size
    assert pair_files(src) == {"a": (src / "a_raw.tif", src / "a_labels.tif"),
                               "b": (src / "b.tiff", None)}
    images = convert_collection(src, tmp_path / "c.zarr", (4, 4))
    assert is_collection(tmp_path / "c.zarr") and collection_images(tmp_path / "c.zarr") == images
    assert [(i.name, i.labels is not None) for i in images] == [("a", True), ("b", False)]
    raw_b = open_array(images[1].raw)
    assert tuple(raw_b.shape) == (6, 9) and tuple(raw_b.voxel_size) == (4, 4)
    assert np.all(np.asarray(raw_b.data) == 5)
    assert np.all(np.asarray(open_array(images[0].labels).data) == 3)


def test_errors_name_the_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _tif(src / "x_labels.tif", (4, 4))
    with pytest.raises(InputError, match="labels without a raw image: x_labels.tif"):
        pair_files(src)
    _tif(src / "x_raw.tif", (4, 5))
    with pytest.raises(InputError, match="'x_labels.tif' has shape"):
        convert_collection(src, tmp_path / "c.zarr", (4, 4))
    assert not (tmp_path / "c.zarr").exists()
    result = CliRunner().invoke(convert, [str(src), str(tmp_path / "s.zarr"), "--voxel-size", "4,4,4"])
    # a ValueError, or its one error line and exit 2 once the CLI's handler is installed
    assert result.exit_code != 0
    assert "--collection" in str(result.exception) + result.output


def test_cli_errors_are_one_line(tmp_path, monkeypatch):
    from dacapo.cli.main import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "images").mkdir()
    _tif(tmp_path / "images" / "a_raw.tif", (4, 4))

    def error(*args: str) -> str:
        result = CliRunner().invoke(cli, ["convert", *args, "--collection"])
        assert result.exit_code == 2, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
        return result.output.strip()

    assert error("imagess/", "x.zarr", "--voxel-size", "4,4") == \
        "error: --collection: the source 'imagess/' does not exist"
    assert error("images/", "x.zarr") == "error: --collection needs --voxel-size"
    assert error("images/", "x.zarr", "--voxel-size", "4,4", "--offset", "0,0", "--map", "1:2") \
        == ("error: --collection: --offset, --map not supported (it takes --voxel-size, --units, "
            "--axis-names and --chunk only)")
    assert not (tmp_path / "x.zarr").exists()
