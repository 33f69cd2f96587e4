"""``dacapo view``: chunks served over HTTP equal the zarr data (every level, channels,
labels), nothing is read whole, and a headless-browser screenshot shows the data."""

from __future__ import annotations

import io
import shutil
import subprocess
import urllib.request
import zlib

import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from funlib.geometry import Coordinate, Roi

from dacapo.cli.main import cli
from dacapo.io.ome_write import prepare_ome
from dacapo.runs.run_dir import RunDir
from dacapo.tools.pyramid import downsample_image
from dacapo.tools.view import chunk_url, make_viewer, run_dir_arrays, screenshot

VOXEL = Coordinate(40, 8, 8)
ROI = Roi((80, 16, 32), (12 * 40, 32 * 8, 40 * 8))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("view") / "v.zarr"
    rng = np.random.default_rng(0)
    raw = prepare_ome(root / "raw", ROI, VOXEL, np.uint8, write_size=Coordinate(6, 16, 16) * VOXEL)
    yy, xx = np.mgrid[0:32, 0:40]
    raw[ROI] = np.broadcast_to(((xx * 6 + yy * 3) % 256).astype(np.uint8), raw.shape)
    seg = prepare_ome(root / "seg", ROI, VOXEL, np.uint64, label=True)
    seg[ROI] = (rng.integers(0, 4, seg.shape) * 1000).astype(np.uint64)
    affs = prepare_ome(root / "affs", ROI, VOXEL, np.float32, num_channels=3)
    affs[ROI] = rng.random(affs.shape, dtype=np.float32)
    downsample_image(root / "raw", levels=1)  # s1: voxel size (40, 16, 16)
    return root


def _fetch(url: str) -> np.ndarray:
    with urllib.request.urlopen(url, timeout=30) as response:
        return np.load(io.BytesIO(zlib.decompress(response.read())))


@pytest.fixture(scope="module")
def viewer(images):
    return make_viewer([images / "raw", images / "seg", images / "affs"])


def test_served_chunks_equal_the_zarr_data(images, viewer):
    viewer, volumes = viewer
    assert set(volumes) == {"raw", "seg", "affs"}
    assert volumes["raw"].volume_type == "image" and volumes["seg"].volume_type == "segmentation"
    info = volumes["raw"].info()
    assert [s for s, _ in info["coordinateSpace"].values()] == pytest.approx(
        [v * 1e-9 for v in VOXEL])  # nm -> m
    assert list(info["voxelOffset"]) == list(ROI.offset / VOXEL)
    s0 = zarr.open_array(str(images / "raw" / "s0"))[:]
    got = _fetch(chunk_url(viewer, volumes["raw"], (2, 3, 5), (7, 20, 33)))
    np.testing.assert_array_equal(got, s0[2:7, 3:20, 5:33])
    # a request at the factors of level s1 (1, 2, 2) is that level's data (same offset)
    s1 = zarr.open_array(str(images / "raw" / "s1"))[:]
    got = _fetch(chunk_url(viewer, volumes["raw"], (0, 1, 0), (12, 16, 20), (1, 2, 2)))
    np.testing.assert_array_equal(got, s1[:, 1:16, 0:20])
    # ... and at (1, 4, 4) the s1 voxel (the coarsest level at least as fine) under the
    # centre of each requested voxel: centre (j + 0.5) * 4 in s0 voxels = s1 index 2 j + 1
    got = _fetch(chunk_url(viewer, volumes["raw"], (0, 0, 0), (12, 8, 10), (1, 4, 4)))
    np.testing.assert_array_equal(got, s1[:, 1::2, 1::2])
    seg = zarr.open_array(str(images / "seg" / "s0"))[:]
    got = _fetch(chunk_url(viewer, volumes["seg"], (0, 0, 0), (12, 32, 40)))
    np.testing.assert_array_equal(got, seg)
    affs = zarr.open_array(str(images / "affs" / "s0"))[:]
    got = _fetch(chunk_url(viewer, volumes["affs"], (0, 4, 8, 16), (3, 9, 24, 40)))
    np.testing.assert_array_equal(got, affs[:, 4:9, 8:24, 16:40])


def test_huge_arrays_are_served_lazily(tmp_path):
    """A 2 PB array (only one chunk written): a chunk request reads only its region."""
    big = prepare_ome(tmp_path / "b.zarr" / "huge", Roi((0, 0, 0), (8000, 10**6, 10**6)),
                         Coordinate(4, 4, 4), np.uint8, write_size=Coordinate(64, 64, 64) * 4)
    big[Roi((0, 0, 0), (8, 8, 8))] = 7
    viewer, volumes = make_viewer([tmp_path / "b.zarr" / "huge"])
    got = _fetch(chunk_url(viewer, volumes["huge"], (0, 0, 0), (4, 4, 4)))
    assert got.shape == (4, 4, 4) and (got[:2, :2, :2] == 7).all() and got[2:].sum() == 0


def _chromium() -> str | None:
    """Debian's chromium, installed when missing (apt-get), else None."""
    if shutil.which("chromium") is None and shutil.which("apt-get") is not None:
        subprocess.run("apt-get update -qq && apt-get install -y -qq chromium", shell=True,
                       capture_output=True, timeout=600, check=False)
    return shutil.which("chromium")


def test_headless_screenshot_shows_the_data(images, tmp_path):
    if _chromium() is None:
        pytest.skip("no chromium (apt-get install chromium failed or is not available)")
    viewer, _ = make_viewer([images / "raw"], layout="xy")
    pixels = screenshot(viewer, tmp_path / "raw.png", size=(400, 300))
    assert (tmp_path / "raw.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the xy panel shows the raw's gradient: many grey levels, not a uniform panel
    assert grey_levels(pixels) > 20, "the viewer shows no data"
    # the same viewer with the layer hidden shows a uniform panel: the check can fail
    with viewer.txn() as state:
        state.layers["raw"].visible = False
    assert grey_levels(screenshot(viewer, tmp_path / "blank.png", size=(400, 300))) <= 2


def grey_levels(pixels: np.ndarray) -> int:
    """Distinct grey levels in the centre of a screenshot (coloured axis lines left out)."""
    centre = pixels[100:200, 150:250, :3].astype(int)
    greys = centre[(centre.max(axis=-1) - centre.min(axis=-1)) < 8]
    return len(np.unique(greys[:, 0]))


def test_view_command_prints_errors_in_one_line(tmp_path):
    r = CliRunner().invoke(cli, ["view", str(tmp_path), "--no-browser"])
    assert r.exit_code == 2 and r.stderr.startswith("error:")


def test_run_dir_shows_raw_gt_latest_prediction_and_best_segmentation(
        tmp_path, write_array, tiny_run):
    container = tmp_path / "d.zarr"
    write_array(container / "validate" / "raw", np.zeros((8, 16, 16), np.uint8), (40, 8, 8))
    write_array(container / "validate" / "fg", np.ones((8, 16, 16), np.uint8), (40, 8, 8))
    rc = tiny_run(container)
    run = RunDir(tmp_path / "runs" / "tiny")
    run.save_config(rc)
    for iteration in (3, 6):
        folder = run.predictions / f"{iteration:08d}" / "validate.zarr"
        prepare_ome(folder / "prediction", ROI, VOXEL, np.float32)
        for pid in (0, 1, 2):
            prepare_ome(folder / f"segmentation_{pid}", ROI, VOXEL, np.uint8, label=True)
    run.save_best({"cell__dice": {"iteration": 6, "parameters": {"id": 2, "threshold": 0.5},
                                  "value": 0.9}})
    latest = run.predictions / "00000006" / "validate.zarr"
    assert run_dir_arrays(run.path) == [
        f"{container}/validate/raw", f"{container}/validate/fg",
        str(latest / "prediction"), str(latest / "segmentation_2")]
    _, volumes = make_viewer([run.path])
    assert [v.volume_type for v in volumes.values()] == ["image", "segmentation", "image",
                                                         "segmentation"]
