"""`dacapo.io.arrays`: opening arrays (plain zarr, OME-NGFF level 0), read-only, with errors
that say what a path holds."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from dacapo.io.arrays import open_array


def test_open_ome_ngff_level0(tmp_path):
    data = np.arange(4 * 6 * 8, dtype=np.uint16).reshape(4, 6, 8)
    root = zarr.open_group(str(tmp_path / "img.zarr"), mode="w", zarr_format=2)
    root.create_array("0", data=data)
    root.create_array("1", data=data[:, ::2, ::2])
    root.attrs["multiscales"] = [{
        "version": "0.4",
        "axes": [{"name": n, "type": "space", "unit": "nanometer"} for n in "zyx"],
        "datasets": [
            {"path": "0", "coordinateTransformations": [
                {"type": "scale", "scale": [40.0, 8.0, 8.0]},
                {"type": "translation", "translation": [80.0, 16.0, 0.0]}]},
            {"path": "1", "coordinateTransformations": [
                {"type": "scale", "scale": [40.0, 16.0, 16.0]}]},
        ],
    }]
    array = open_array(tmp_path / "img.zarr", "raw")
    assert tuple(array.voxel_size) == (40, 8, 8)
    assert tuple(array.roi.offset) == (80, 16, 0)
    assert list(array.axis_names) == ["z", "y", "x"]
    np.testing.assert_array_equal(array[array.roi], data)
    # a plain group is not an array: the error says what it holds
    plain = zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    plain.create_array("raw", data=data)
    with pytest.raises(ValueError, match=r"raw: .*is a zarr group, not an array.*'raw'"):
        open_array(tmp_path / "plain.zarr", "raw")
    with pytest.raises(FileNotFoundError, match="gt: no array at"):
        open_array(tmp_path / "missing.zarr" / "gt", "gt")


def test_opened_read_only(tmp_path, write_array):
    write_array(tmp_path / "d.zarr" / "raw", np.zeros((4, 4), np.uint8), (2, 2))
    array = open_array(tmp_path / "d.zarr" / "raw")
    with pytest.raises(Exception):  # noqa: B017 - zarr's read-only error class varies
        array[array.roi] = np.ones((4, 4), np.uint8)




def test_a_failed_atomic_write_leaves_no_temp_file(tmp_path, monkeypatch):
    """`atomic_write_bytes` onto a target that cannot be replaced (read-only, immutable)
    raises and leaves no ``.<name>.<pid>.tmp`` behind (a newcomer found one beside
    best.json after a refused validate)."""
    import os

    from dacapo.io import arrays

    def refuse(src, dst):
        raise PermissionError(1, "Operation not permitted", str(src), None, str(dst))

    monkeypatch.setattr(arrays.os, "replace", refuse)
    with pytest.raises(PermissionError):
        arrays.atomic_write_bytes(tmp_path / "best.json", b"{}")
    assert sorted(os.listdir(tmp_path)) == []
