"""`dacapo.training.batches`: unaugmented crops equal the arrays and the predictor's
targets, and crops with too little foreground are rejected."""

from __future__ import annotations

import numpy as np
import torch
import zarr
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from dacapo.experiments.trainer_config import AugmentConfig, TrainerConfig
from dacapo.pipeline.model_geometry import ModelGeometry
from dacapo.runs.model_builder import build_model
from dacapo.training.batches import BatchProvider

NO_AUGMENT = AugmentConfig(mirror=False, transpose=False, intensity_scale=0, intensity_shift=0)


def test_crops_match_the_arrays(container, tiny_run):
    """Unaugmented crops: raw is the array read at the input ROI, target/weight are the
    predictor's on the GT region, cropped to the output ROI; the model output fits."""
    rc = tiny_run(container, trainer_config=TrainerConfig(augment=NO_AUGMENT))
    provider = BatchProvider(rc)
    state = provider._setup()
    ds = state["datasets"][0]
    predictor = rc.task_config.build().predictor
    model = build_model(rc)
    geo = ModelGeometry(model, ds.raw.voxel_size)
    vs = ds.raw.voxel_size
    raw_zarr = zarr.open_array(str(container / "train" / "raw"), mode="r")[:]
    gt_zarr = zarr.open_array(str(container / "train" / "fg"), mode="r")[:]
    offsets = set()
    for seed in range(6):
        sample, _ = provider._sample(state, np.random.default_rng(seed), None)
        out_roi = Roi(Coordinate(sample["out_offset"].tolist()), geo.output_size)
        offsets.add(tuple(out_roi.offset))
        assert ds.training_roi.contains(out_roi)
        assert out_roi.offset % vs == Coordinate(0, 0, 0)
        in_roi = out_roi.grow(geo.context, geo.context)
        assert tuple(sample["raw_offset"]) == tuple(in_roi.offset)
        expected = np.zeros(tuple(in_roi.shape / vs), np.float32)  # zero-padded outside
        inside = in_roi.intersect(ds.raw.roi)
        src = (inside / vs).to_slices()
        dst = ((inside - in_roi.offset) / vs).to_slices()
        expected[dst] = raw_zarr[src] / np.float32(255)
        np.testing.assert_array_equal(sample["raw"][0], expected)
        gt_roi = predictor.gt_region_for_roi(out_roi, vs)
        gt = Array(np.asarray(ds.gt.to_ndarray(gt_roi, fill_value=0)), gt_roi.offset, vs)
        target = predictor.create_target(gt).to_ndarray(out_roi)
        np.testing.assert_allclose(sample["target"], target, atol=1e-6)
        # the target really is the signed distance of the fg crop (spot check a voxel
        # on each side of a boundary: |tanh| < tanh(1 voxel / scale) there)
        gt_out = gt_zarr[(out_roi / vs).to_slices()]
        assert np.all((sample["target"][0] > 0) == (gt_out > 0))
        assert sample["weight"].shape == sample["target"].shape
        assert np.all(sample["weight"] > 0)
    assert len(offsets) > 3
    with torch.no_grad():
        y = model(torch.from_numpy(sample["raw"][None]))
    assert tuple(y.shape[1:]) == sample["target"].shape


def test_rejection_of_crops_with_little_foreground(container, tiny_run):
    rc = tiny_run(container, trainer_config=TrainerConfig(augment=NO_AUGMENT,
                                                          min_foreground=0.9))
    provider = BatchProvider(rc)
    state = provider._setup()
    fg = zarr.open_array(str(container / "train" / "fg"), mode="r")[:]
    vs = state["datasets"][0].raw.voxel_size
    geo = state["geometries"][0]
    fractions = []
    for seed in range(5):
        sample, _ = provider._sample(state, np.random.default_rng(seed), None)
        out_roi = Roi(Coordinate(sample["out_offset"].tolist()), geo.output_size)
        fractions.append(fg[(out_roi / vs).to_slices()].mean())
    assert min(fractions) >= 0.9


def test_ignored_sections_get_no_weight(container, tiny_run):
    """A section listed in ``ignore_sections`` has weight 0 in every crop that holds it;
    the other sections keep theirs (the distance task weighs every labelled voxel)."""
    import attr

    rc = tiny_run(container, trainer_config=TrainerConfig(augment=NO_AUGMENT))
    split = rc.datasplit_config
    ignored = [1, 4, 5]
    rc = attr.evolve(rc, datasplit_config=attr.evolve(
        split, train=[attr.evolve(split.train[0], ignore_sections=ignored)]))
    provider = BatchProvider(rc)
    state = provider._setup()
    ds = state["datasets"][0]
    vs = ds.raw.voxel_size
    seen = set()
    for seed in range(8):
        sample, _ = provider._sample(state, np.random.default_rng(seed), None)
        first = (int(sample["out_offset"][0]) - ds.gt.roi.begin[0]) // vs[0]
        weight = sample["weight"][0]
        for i in range(weight.shape[0]):
            if first + i in ignored:
                seen.add(first + i)
                assert np.all(weight[i] == 0)
            else:
                assert np.all(weight[i] > 0)
    assert seen  # some crop held an ignored section
