"""`benchmarks/quality.py` on a tiny TIFF dataset made here: the data split (held-out labels
never in the training part, held-out raw with its real context), the Otsu baseline against
a hand computation, and the score of an applied output (the GT itself scores IoU 1)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import quality as q  # benchmarks/quality.py: tests/benchmarks/conftest.py puts it on the path
import tifffile
from funlib.persistence import open_ds, prepare_ds
from skimage.filters import threshold_otsu


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    labels = np.zeros((12, 20, 24), np.uint16)
    labels[1:11, 3:9, 4:12] = 1
    labels[5:12, 11:18, 14:22] = 2
    raw = (40 + 120 * (labels > 0) + rng.normal(0, 25, labels.shape)).clip(0, 255).astype(np.uint8)
    folder = tmp_path / "data" / "tiny_nuclei"
    folder.mkdir(parents=True)
    tifffile.imwrite(folder / "raw.tif", raw)
    tifffile.imwrite(folder / "labels.tif", labels)
    (folder / "meta.json").write_text(json.dumps({"voxel_size_nm_zyx": [4, 2, 2]}))
    # the last third of the 12 slices (4) held out, up to 3 slices of raw context before them
    spec = {"task": "distance", "holdout": 1 / 3, "gt": "mask", "context_z": 3,
            "voxel_size": None}
    monkeypatch.setitem(q.DATASETS, "tiny_nuclei", spec)
    paths = q.prepare_data("tiny_nuclei", tmp_path / "data", tmp_path / "work")
    return raw, labels, paths


def test_split_holds_out_the_last_slices_with_real_raw_context(tiny):
    raw, labels, paths = tiny
    train_gt = open_ds(paths["train/gt"], mode="r")
    val_gt = open_ds(paths["validate/gt"], mode="r")
    val_raw = open_ds(paths["validate/raw"], mode="r")
    assert train_gt.roi.shape[0] == 8 * 4 and val_gt.roi.offset[0] == 8 * 4
    assert not train_gt.roi.intersects(val_gt.roi)
    np.testing.assert_array_equal(val_gt[val_gt.roi], (labels[8:] > 0).astype(np.uint8))
    assert val_raw.roi.offset[0] == 5 * 4  # 3 slices of context before the held-out slab
    np.testing.assert_array_equal(val_raw[val_raw.roi], raw[5:])


def test_otsu_baseline_matches_a_hand_computation(tiny):
    raw, labels, paths = tiny
    got = q.otsu_baseline(paths["raw"], paths["validate/gt"], "distance")
    r, g = raw[8:].astype(np.float32), labels[8:] > 0
    t = threshold_otsu(r)
    seg = r > t
    iou = (seg & g).sum() / (seg | g).sum()
    assert got["polarity"] == "bright" and got["threshold"] == pytest.approx(t)
    assert got["iou"] == pytest.approx(iou)
    assert got["dice"] == pytest.approx(2 * iou / (1 + iou))


def test_applied_output_equal_to_the_gt_scores_one(tiny, tmp_path):
    _, labels, paths = tiny
    seg = prepare_ds(str(tmp_path / "seg.zarr" / "seg"), shape=labels.shape, offset=(0, 0, 0),
                     voxel_size=(4, 2, 2), dtype=np.uint8, mode="w")
    seg[seg.roi] = (labels > 0).astype(np.uint8)
    got = q.score_applied(str(tmp_path / "seg.zarr" / "seg"), paths["validate/gt"], "distance")
    assert got == {"iou": 1.0, "dice": 1.0, "scored_fraction": 1.0}
