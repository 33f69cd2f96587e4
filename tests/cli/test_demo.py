"""The built-in demo: synthetic data, and a quick run of the whole demo job."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dacapo.cli.demo import run_demo
from dacapo.cli.demo_configs import demo_run_configs
from dacapo.cli.demo_data import VOXEL_SIZE, make_demo_data, synthetic_cells
from dacapo.io.ome_write import open_ds  # plain arrays and OME-NGFF outputs


def test_synthetic_cells_touch_and_show_membranes():
    shape = (16, 64, 64)
    raw, touching, membrane = synthetic_cells(shape, VOXEL_SIZE, np.random.default_rng(5),
                                              gap=False)
    raw2, labels, membrane2 = synthetic_cells(shape, VOXEL_SIZE, np.random.default_rng(5))
    raw3, labels3, _ = synthetic_cells(shape, VOXEL_SIZE, np.random.default_rng(5))
    np.testing.assert_array_equal(raw2, raw3)  # deterministic given the generator
    np.testing.assert_array_equal(labels, labels3)
    np.testing.assert_array_equal(raw, raw2)  # the same image, with or without the gap
    np.testing.assert_array_equal(membrane, membrane2)
    assert raw.dtype == np.uint8 and labels.dtype == np.uint32
    for lab in (touching, labels):
        ids = np.unique(lab)
        assert ids[0] == 0 and np.array_equal(ids, np.arange(len(ids)))  # 1..n, no gaps
        assert len(ids) > 5
    # the cells touch: face-adjacent voxels of two different cells, along every axis
    for axis in range(3):
        a = np.moveaxis(touching, axis, 0)
        touch = (a[1:] != a[:-1]) & (a[1:] > 0) & (a[:-1] > 0)
        assert touch.sum() > 10, f"no touching cells along axis {axis}"
    # the GT labels the shared membranes 0: same cells, minus the membrane band
    assert not np.any(labels[membrane])
    np.testing.assert_array_equal(labels > 0, (touching > 0) & ~membrane)
    pairs = np.unique(np.stack([touching[labels > 0], labels[labels > 0]]), axis=1)
    assert len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))  # 1:1
    # membranes are dark: every voxel at a boundary of the touching labels is in the band
    # (up to the band width), and the band is darker than the cells
    assert raw[membrane & (touching > 0)].mean() < raw[labels > 0].mean() - 40


def test_demo_data_arrays(tmp_path):
    container = make_demo_data(tmp_path, train_shape=(8, 32, 32), validate_shape=(8, 24, 24))
    for split, shape in (("train", (8, 32, 32)), ("validate", (8, 24, 24))):
        arrays = {n: open_ds(str(container / split / n), mode="r")
                  for n in ("raw", "labels", "fg", "classes", "mask")}
        for a in arrays.values():
            assert tuple(a.voxel_size) == (16, 8, 8) and tuple(a.shape) == shape
        labels = arrays["labels"][:]
        np.testing.assert_array_equal(arrays["fg"][:], labels > 0)
        classes = arrays["classes"][:]
        np.testing.assert_array_equal(classes == 1, labels > 0)
        assert set(np.unique(classes)) == {0, 1, 2}
        raw = arrays["raw"][:]
        assert raw[classes == 2].mean() < raw[classes == 1].mean() - 40  # dark membranes
    # a second call leaves the data alone (idempotent)
    before = (container / "train" / "raw").stat().st_mtime_ns
    make_demo_data(tmp_path, train_shape=(8, 32, 32), validate_shape=(8, 24, 24))
    assert (container / "train" / "raw").stat().st_mtime_ns == before


def test_demo_configs_are_valid(tmp_path):
    make_demo_data(tmp_path, train_shape=(24, 80, 80), validate_shape=(16, 48, 48))
    for rc in demo_run_configs(tmp_path):
        assert rc.problems() == []


def test_quick_demo_end_to_end(tmp_path):
    """`dacapo demo --quick` on small volumes: both runs train, validate, apply; the
    applied output scored against the GT equals the best validation score."""
    lines: list[str] = []
    results = run_demo(tmp_path, quick=True, echo=lines.append, train_shape=(16, 80, 80),
                       validate_shape=(20, 64, 64), num_workers=1)
    text = "\n".join(lines)
    assert "== demo summary" in text and "wall time" in text
    for name in ("demo_distance", "demo_affinities"):
        r = results[name]
        assert math.isfinite(r["value"])
        from dacapo.runs.run_dir import RunDir

        run = RunDir(r["run_dir"])
        best = run.load_best()[r["criterion"]]
        assert r["value"] == pytest.approx(best["value"])
        for png in ("loss.png", "criteria.png"):
            assert (run.plots / png).stat().st_size > 1000
        # every voxel of the validation volume is segmented (reflect padding; with
        # padding "none" only the (16, 48, 48) the model sees real context for)
        assert open_ds(r["segmentation"], mode="r").shape[-3:] == (20, 64, 64)
