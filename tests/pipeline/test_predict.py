"""`dacapo.pipeline.predict`: whole-ROI prediction with padding, ``none`` = only real context, and
in this process (0 workers), resumable."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from funlib.geometry import Coordinate

from dacapo.blockwise.grid import plan_blocks
from dacapo.errors import InputError
from dacapo.experiments.normalization import normalize_input
from dacapo.io.arrays import open_array
from dacapo.pipeline.engines import make_forward
from dacapo.pipeline.model_geometry import ModelGeometry, block_rois, prediction_roi
from dacapo.pipeline.predict import predict
from dacapo.pipeline.predict_blocks import predict_block
from dacapo.pipeline.predict_options import PredictOptions
from dacapo.runs.model_builder import build_model


@pytest.fixture(scope="module")
def model(tiny_run):
    return build_model(tiny_run("unused.zarr")).eval()


def test_a_volume_smaller_than_the_model_input_is_predicted_whole(
        model, tmp_path, write_array, tiny_run):
    vs = Coordinate(16, 8, 8)
    geometry = ModelGeometry(model, vs, model.eval_input_shape)
    shape = (4, 14, 14)  # smaller than the context (2, 8, 8) voxels on each side needs
    assert any(s < i for s, i in zip(shape, model.eval_input_shape))
    raw = tmp_path / "d.zarr" / "raw"
    write_array(raw, np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8), vs,
                offset=(160, 80, 80))
    rc = tiny_run(tmp_path)
    outs = {}
    for padding in ("reflect", "zero"):
        out = predict(rc, None, raw, tmp_path / f"{padding}.zarr" / "p",
                      PredictOptions(padding=padding, progress=False), model=model)
        assert out.roi == out.roi.snap_to_grid(geometry.output_voxel_size)
        assert tuple(out.roi.offset) == (160, 80, 80) and out.roi.shape == Coordinate(shape) * vs
        outs[padding] = out[out.roi]
        assert np.isfinite(outs[padding]).all()
    assert not np.array_equal(outs["reflect"], outs["zero"])  # the padding is what differs
    with pytest.raises(InputError, match="too small for the model"):  # today's behaviour
        predict(rc, None, raw, tmp_path / "none.zarr" / "p",
                PredictOptions(padding="none", progress=False), model=model)


def test_none_predicts_only_where_the_context_is_real(model, tmp_path, write_array, tiny_run):
    vs = Coordinate(16, 8, 8)
    geometry = ModelGeometry(model, vs, model.eval_input_shape)
    raw = tmp_path / "d.zarr" / "raw"
    write_array(raw, np.random.default_rng(1).integers(0, 255, (16, 48, 48), dtype=np.uint8), vs)
    rc = tiny_run(tmp_path)
    none = predict(rc, None, raw, tmp_path / "n.zarr" / "p",
                   PredictOptions(padding="none", progress=False), model=model)
    whole = predict(rc, None, raw, tmp_path / "w.zarr" / "p", PredictOptions(progress=False),
                    model=model)
    raw_roi = whole.roi
    assert none.roi == raw_roi.grow(-geometry.context, -geometry.context)
    assert tuple(raw_roi.shape / vs) == (16, 48, 48)
    with pytest.raises(InputError, match="padding: must be one of"):
        predict(rc, None, raw, tmp_path / "x.zarr" / "p", PredictOptions(padding="wrap"),
                model=model)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_one_worker_predicts_here_equals_one_forward_and_resumes(
        tmp_path, batch_norm, tiny_run, randomise_batch_norm, write_array, tiny_unet):
    """0 workers predict in this process (reads and writes overlapping the forward
    passes): the blocks equal one forward pass of the model over the whole reflect-padded
    raw, and the runner's done-markers make a re-run redo only the unmarked blocks. With
    batch norm (eval mode: the stored statistics, not the block's) the same holds."""
    vs = Coordinate(16, 8, 8)
    rc = tiny_run(tmp_path, architecture_config=tiny_unet(batch_norm=batch_norm))
    model = build_model(rc).eval()
    randomise_batch_norm(model)
    assert any(isinstance(m, torch.nn.BatchNorm3d) for m in model.modules()) == batch_norm
    checkpoint = tmp_path / "00000000.pt"
    torch.save({"model": model.state_dict()}, checkpoint)
    geometry = ModelGeometry(model, vs, model.eval_input_shape)
    out_shape = Coordinate(geometry.output_shape)
    blocks = Coordinate(2, 3, 2)
    shape = out_shape * blocks
    data = np.random.default_rng(2).integers(0, 255, tuple(shape), dtype=np.uint8)
    raw = tmp_path / "d.zarr" / "raw"
    write_array(raw, data, vs)
    path = tmp_path / "p.zarr" / "p"
    logs = tmp_path / "logs"
    here = PredictOptions(num_workers=0, engine="torch", progress=False, log_dir=logs)
    out = predict(rc, checkpoint, raw, path, here)
    # the reference: the whole volume in one forward pass (a valid UNet is translation
    # equivariant for shifts that are multiples of its output block)
    context = geometry.context / vs
    padded = np.pad(normalize_input(data, rc.normalization), [(c, c) for c in context],
                    mode="reflect")
    assert model.compute_output_shape(padded.shape)[1] == shape
    with torch.no_grad():
        expected = model(torch.from_numpy(padded[None, None].astype(np.float32)))[0].numpy()
    np.testing.assert_allclose(out[out.roi], expected[0] if expected.shape[0] == 1
                               else expected, rtol=0, atol=1e-5)
    assert not (logs / "predict" / "worker_spec.pkl").exists()  # no worker process
    plan = plan_blocks({}, path, geometry.output_size, geometry.context, None, logs,
                       "predict", "overhang", parallel=False)
    assert plan.done_ids() == set(plan.blocks) and len(plan.blocks) == int(np.prod(blocks))
    first, second = sorted(plan.blocks)[:2]
    writable = open_array(path, "prediction", "r+")
    writable[plan.blocks[first].write_roi] = -1.0  # unmarked below: recomputed
    (logs / "predict" / "done" / str(first)).unlink()
    writable[plan.blocks[second].write_roi] = -2.0  # still marked done: skipped
    again = predict(rc, checkpoint, raw, path, here)
    whole = again[again.roi]
    np.testing.assert_array_equal(again[plan.blocks[second].write_roi], -2.0)
    first_roi = plan.blocks[first].write_roi
    np.testing.assert_allclose(again[first_roi], out_of(expected, first_roi, vs), atol=1e-5)
    assert (whole == -2.0).sum() == int(np.prod(out_shape))


def out_of(expected: np.ndarray, roi, vs) -> np.ndarray:
    """``roi`` of a single-channel output covering the volume from the origin."""
    data = expected[0] if expected.shape[0] == 1 else expected
    return data[(Ellipsis, *(roi / vs).to_slices())]


def test_in_process_equals_block_by_block_bit_for_bit(tmp_path, tiny_run, write_array):
    """The overlapped in-process prediction (reader and writer threads around the forward
    passes, channels-last engine) writes exactly what the straightforward path gives: each
    block read, predicted and written one after the other; a second run writes the same
    bytes."""
    vs = Coordinate(16, 8, 8)
    rc = tiny_run(tmp_path)
    model = build_model(rc).eval()
    checkpoint = tmp_path / "00000000.pt"
    torch.save({"model": model.state_dict()}, checkpoint)
    geometry = ModelGeometry(model, vs, model.eval_input_shape)
    shape = Coordinate(geometry.output_shape) * Coordinate(2, 2, 2) - Coordinate(1, 3, 5)
    raw = tmp_path / "d.zarr" / "raw"
    write_array(raw, np.random.default_rng(3).integers(0, 255, tuple(shape), np.uint8), vs)
    options = PredictOptions(num_workers=0, engine="channels_last", progress=False)
    runs = [np.asarray(predict(rc, checkpoint, raw, tmp_path / f"p{i}.zarr" / "p", options)[:])
            for i in range(2)]
    source = open_array(raw, "raw")
    out_roi = prediction_roi(source.roi, geometry, None, "reflect")
    forward = make_forward(model, "channels_last")
    expected = np.zeros_like(runs[0])
    for roi in block_rois(out_roi, geometry.output_size):
        y = predict_block(forward, source, roi, geometry, "reflect", rc.normalization)
        inside = roi.intersect(out_roi)
        into = ((inside - out_roi.offset) / vs).to_slices()
        expected[(Ellipsis, *into)] = y[(Ellipsis, *((inside - roi.offset) / vs).to_slices())]
    assert runs[0].tobytes() == expected.tobytes() == runs[1].tobytes()


def test_test_time_flips_reach_every_block(tmp_path, tiny_run, write_array):
    """An affinity run with ``test_time_flips``: each block of the whole-ROI prediction is
    the flip mean with the run's offsets (`dacapo.experiments.tta`), not one pass."""
    from dacapo.experiments.tasks import AffinitiesTaskConfig
    from dacapo.experiments.tta import FlipPlan

    vs = Coordinate(16, 8, 8)
    offsets = ((1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 0, 3))
    rc = tiny_run(tmp_path, task_config=AffinitiesTaskConfig("a", neighborhood=offsets),
                  test_time_flips=True)
    model = build_model(rc).eval()
    checkpoint = tmp_path / "00000000.pt"
    torch.save({"model": model.state_dict()}, checkpoint)
    geometry = ModelGeometry(model, vs, model.eval_input_shape)
    raw = tmp_path / "d.zarr" / "raw"
    shape = Coordinate(geometry.output_shape) * Coordinate(1, 2, 1)
    write_array(raw, np.random.default_rng(4).integers(0, 255, tuple(shape), np.uint8), vs)
    options = PredictOptions(num_workers=0, engine="torch", progress=False)
    got = np.asarray(predict(rc, checkpoint, raw, tmp_path / "p.zarr" / "p", options)[:])
    source = open_array(raw, "raw")
    out_roi = prediction_roi(source.roi, geometry, None, "reflect")
    forward = make_forward(model, "torch")
    expected = np.zeros_like(got)
    one_pass = np.zeros_like(got)
    for roi in block_rois(out_roi, geometry.output_size):
        into = ((roi - out_roi.offset) / vs).to_slices()
        expected[(Ellipsis, *into)] = predict_block(forward, source, roi, geometry, "reflect",
                                                    rc.normalization, FlipPlan(offsets))
        one_pass[(Ellipsis, *into)] = predict_block(forward, source, roi, geometry, "reflect",
                                                    rc.normalization)
    assert np.allclose(got, expected, atol=1e-6)
    assert not np.allclose(got, one_pass, atol=1e-3)


def test_a_raw_of_other_dimensions_is_one_line(model, tmp_path, write_array, tiny_run):
    # a 3D run's model given a 2D image (was: an AssertionError of funlib's Coordinate)
    raw = tmp_path / "d.zarr" / "raw"
    write_array(raw, np.zeros((48, 48), np.uint8), (8, 8))
    with pytest.raises(InputError, match=r"has 2 spatial dimensions; the run's model takes 3D "
                                         r"input \(input shape \(8, 36, 36\)\)"):
        predict(tiny_run(tmp_path), None, raw, tmp_path / "p.zarr" / "p",
                PredictOptions(progress=False), model=model)
    assert not (tmp_path / "p.zarr" / "p").exists()
