"""Data side of the pipeline: opening arrays (zarr, OME-NGFF), dataset checks,
augmentations, the run directory's files."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from funlib.geometry import Coordinate

from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig
from dacapo.experiments.trainer_config import AugmentConfig
from dacapo.io.arrays import open_array
from dacapo.runs.run_dir import RunDir
from dacapo.training.augment import augment, mirror_and_transpose


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


def test_dataset_checks_name_dataset_and_array(tmp_path, write_array):
    c = tmp_path / "d.zarr"
    write_array(c / "raw", np.zeros((8, 8, 8), np.uint8), (16, 8, 8))
    write_array(c / "gt", np.zeros((8, 8, 8), np.uint8), (16, 8, 8))
    write_array(c / "gt2d", np.zeros((8, 8), np.uint8), (8, 8))
    write_array(c / "far", np.zeros((8, 8, 8), np.uint8), (16, 8, 8), offset=(1600, 0, 0))
    write_array(c / "mask4", np.ones((8, 8, 8), np.uint8), (4, 8, 8))
    ok = DatasetConfig("a", str(c / "raw"), str(c / "gt")).open()
    assert ok.training_roi == ok.raw.roi
    cases = [
        (DatasetConfig("b", str(c / "raw"), str(c / "gt2d")), "dataset 'b'.*spatial dim"),
        (DatasetConfig("c", str(c / "raw"), str(c / "far")), "dataset 'c'.*do not overlap"),
        (DatasetConfig("d", str(c / "raw"), str(c / "gt"), str(c / "mask4")),
         "dataset 'd'.*mask"),
        (DatasetConfig("e", str(c / "nope"), str(c / "gt")), "dataset 'e': raw: no array"),
    ]
    for config, pattern in cases:
        with pytest.raises((ValueError, FileNotFoundError), match=pattern):
            config.open()
    split = DataSplitConfig(train=[cases[0][0], cases[0][0]], validate=[])
    problems = split.problems()
    assert any("duplicate dataset names ['b']" in p for p in problems)
    assert DataSplitConfig(train=[]).problems()[0].startswith("datasplit.train")


def test_relative_paths_resolve_against_a_base():
    split = DataSplitConfig(train=[DatasetConfig("t", "a.zarr/raw", "/abs.zarr/gt", "m.zarr/x")])
    r = split.resolve("/data")
    assert (r.train[0].raw, r.train[0].gt, r.train[0].mask) == (
        "/data/a.zarr/raw", "/abs.zarr/gt", "/data/m.zarr/x")


def _ramp(shape):
    return np.arange(np.prod(shape), dtype=np.float32).reshape(shape)


def test_mirror_and_transpose_keep_arrays_aligned():
    """raw (input ROI) and gt (bigger GT region) share a centre: after any flip or axis
    swap, the gt crop at the raw's place still equals the raw."""
    vs = Coordinate(40, 8, 8)
    gt = _ramp((6, 12, 12))
    raw = gt[None, 1:5, 2:10, 2:10].copy()  # centred inside the gt region
    seen = set()
    for seed in range(200):
        cfg = AugmentConfig(intensity_scale=0, intensity_shift=0)
        r, g = mirror_and_transpose([raw, gt], vs, cfg, np.random.default_rng(seed))
        np.testing.assert_array_equal(r[0], g[1:5, 2:10, 2:10])
        seen.add(g.tobytes())
        # z (40 nm) is never swapped with y/x (8 nm)
        assert g.shape == gt.shape
    assert len(seen) == 16  # 8 flip combinations x (y, x swapped or not), nothing else


def test_transpose_only_between_axes_of_equal_extent():
    vs = Coordinate(8, 8)
    a = _ramp((4, 6))
    for seed in range(10):
        (out,) = mirror_and_transpose([a], vs, AugmentConfig(mirror=False),
                                      np.random.default_rng(seed))
        np.testing.assert_array_equal(out, a)


def test_intensity_and_determinism():
    vs = Coordinate(8, 8)
    raw = np.full((1, 16, 16), 0.5, np.float32)
    labels = np.arange(256, dtype=np.uint32).reshape(16, 16)
    cfg = AugmentConfig(mirror=False, transpose=False, intensity_scale=0.2,
                        intensity_shift=0.1, gamma=0.3, noise=0.05)
    outs = []
    for _ in range(2):
        r, (lab,) = augment(raw, [labels], vs, cfg, np.random.default_rng(7))
        outs.append(r)
        np.testing.assert_array_equal(lab, labels)  # intensity changes leave labels alone
    np.testing.assert_array_equal(outs[0], outs[1])  # same generator state, same result
    r, _ = augment(raw, [labels], vs, AugmentConfig(mirror=False, transpose=False,
                   intensity_scale=0.2, intensity_shift=0.1), np.random.default_rng(3))
    value = float(r[0, 0, 0])  # 0.5 * a + b with a in [0.8, 1.2], b in [-0.1, 0.1]
    assert np.all(r == value) and 0.3 <= value <= 0.7
    assert np.std(outs[0]) > 0  # noise


def test_elastic_keeps_labels_and_shapes():
    vs = Coordinate(16, 8, 8)
    labels = np.zeros((10, 24, 24), np.uint32)
    labels[:, :12] = 3
    labels[:, 12:] = 9
    raw = labels[None].astype(np.float32) / 10
    cfg = AugmentConfig(mirror=False, transpose=False, intensity_scale=0, intensity_shift=0,
                        elastic_magnitude=12, elastic_spacing=64)
    r, (lab,) = augment(raw, [labels], vs, cfg, np.random.default_rng(1))
    assert r.shape == raw.shape and lab.shape == labels.shape
    assert set(np.unique(lab)) <= {3, 9}  # nearest neighbour: no new label values
    assert not np.array_equal(lab, labels)  # the field moved the boundary
    # raw (linear) follows the labels (nearest) away from the boundary
    np.testing.assert_allclose(r[0][lab == 3][:50], 0.3, atol=0.05)
    assert cfg.elastic_margin(vs) == Coordinate(48, 40, 40)
    assert AugmentConfig(gamma=-1).problems() == [
        "trainer.augment.gamma: must be >= 0, got -1"]


def test_run_dir_csv_truncation_and_atomic_files(tmp_path):
    run = RunDir(tmp_path / "run").create()
    run.append_training_stats([{"iteration": i, "loss": 1.0 / i, "time": i} for i in range(1, 6)])
    with open(run.training_stats_file, "a") as f:
        f.write("6,0.1")  # a line cut by a kill
    assert [r["iteration"] for r in run.training_stats()] == [1, 2, 3, 4, 5]
    run.truncate_training_stats(3)
    assert [r["iteration"] for r in run.training_stats()] == [1, 2, 3]
    (run.checkpoints / ".00000009.pt.123.tmp").write_bytes(b"half")
    run.create()  # a re-run removes temp files a killed writer left
    assert not list(run.checkpoints.iterdir())
    run.save_checkpoint(3, {"model": {}})
    assert run.checkpoint_iterations() == [3] and run.load_checkpoint()["iteration"] == 3
    run.replace_validation_scores(3, [{"iteration": 3, "dataset": "v", "parameters": {"a": 1},
                                       "criterion": "dice", "value": 0.5}])
    run.replace_validation_scores(3, [{"iteration": 3, "dataset": "v", "parameters": {"a": 1},
                                       "criterion": "dice", "value": 0.7}])
    assert [r["value"] for r in run.validation_scores()] == [0.7]


def test_the_mask_rule_same_voxel_size_and_roi_as_the_gt(tmp_path, write_array):
    """One rule (`dacapo.io.array_checks.check_mask`), applied when a dataset opens: a mask
    that only overlaps the GT is refused (before: accepted here, refused by verify, and
    intersected by training)."""
    c = tmp_path / "d.zarr"
    write_array(c / "raw", np.zeros((8, 8, 8), np.uint8), (16, 8, 8))
    write_array(c / "gt", np.zeros((8, 8, 8), np.uint8), (16, 8, 8))
    write_array(c / "same", np.ones((8, 8, 8), np.uint8), (16, 8, 8))
    write_array(c / "part", np.ones((4, 8, 8), np.uint8), (16, 8, 8), offset=(32, 0, 0))
    ds = DatasetConfig("ok", str(c / "raw"), str(c / "gt"), str(c / "same")).open()
    assert ds.training_roi == ds.gt.roi
    with pytest.raises(ValueError, match=r"dataset 'p': mask: shape \(4, 8, 8\) at offset "
                                         r"\(32, 0, 0\) differs from gt shape \(8, 8, 8\)"):
        DatasetConfig("p", str(c / "raw"), str(c / "gt"), str(c / "part")).open()
