"""Raw normalisation of a run (`dacapo.experiments.normalization`): bad statistics are one-line
errors; the statistics are computed once from the training raw, written to run.yaml and reused
by prediction (the math itself: tests/ops/test_normalize.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dacapo.experiments.normalization import NormalizationConfig, normalize_input
from dacapo.ops.normalize import intensity_statistics, normalize


def test_bad_statistics_are_one_line_errors():
    with pytest.raises(ValueError, match="constant"):
        normalize(np.ones(3), "percentile", {"low": 1, "high": 1, "mean": 1, "std": 0})
    with pytest.raises(ValueError, match="NaN or Inf"):
        intensity_statistics([np.array([1.0, np.nan])])
    with pytest.raises(ValueError, match="no statistics"):
        normalize_input(np.ones(3), NormalizationConfig())
    assert NormalizationConfig(method="x").problems()[0].startswith("normalization.method")


def test_statistics_stored_in_run_and_used_by_predict(tmp_path, tiny_data, tiny_run):
    from funlib.persistence import open_ds

    from dacapo.pipeline.predict import predict
    from dacapo.pipeline.predict_options import PredictOptions
    from dacapo.runs.model_builder import build_model
    from dacapo.runs.run_dir import RunDir
    from dacapo.training.loop import train_run

    container = tiny_data(tmp_path)
    rc = tiny_run(container, num_iterations=2, checkpoint_interval=2,
                  normalization=NormalizationConfig())
    assert rc.normalization.method == "percentile" and rc.normalization.low is None
    run_dir = train_run(rc, tmp_path / "runs", progress=False)
    stored = RunDir(run_dir.path).load_config().normalization
    raw = np.asarray(open_ds(f"{container}/train/raw", mode="r")[:])
    expected = np.percentile(raw.astype(np.float64), [0.5, 99.5])
    assert [stored.low, stored.high] == pytest.approx(expected.tolist())
    assert stored.mean == pytest.approx(raw.mean())

    # prediction of the validation raw = the model on the raw normalised with those numbers
    stored_rc = RunDir(run_dir.path).load_config()
    out = predict(stored_rc, run_dir.checkpoint_path(2), f"{container}/validate/raw",
                  tmp_path / "pred.zarr/p",
                  PredictOptions(num_workers=0, progress=False, padding="none"))
    model = build_model(stored_rc)
    state = torch.load(run_dir.checkpoint_path(2), map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    model.eval()
    vraw = open_ds(f"{container}/validate/raw", mode="r")
    shape = tuple(model.input_shape)
    x = np.asarray(vraw[:])[tuple(slice(0, s) for s in shape)]
    x = (x.astype(np.float32) - stored.low) / (stored.high - stored.low)
    with torch.no_grad():
        y = model(torch.from_numpy(x)[None, None])[0].numpy()
    got = np.asarray(out.to_ndarray(out.roi))
    got = got if got.ndim == y.ndim else got[None]  # one channel may be stored without its axis
    o = y.shape[1:]
    assert np.allclose(got[(slice(None),) + tuple(slice(0, s) for s in o)], y, atol=1e-5)


def _in_memory(data: np.ndarray):
    from funlib.persistence import Array

    return Array(data, offset=(0,) * data.ndim, voxel_size=(1,) * data.ndim)


def test_each_array_maps_an_affine_copy_of_an_image_identically():
    """``statistics: each_array``: an image and ``3 x + 7`` (another exposure) map to the
    same model input, each by its own 0.5 / 99.5 percentiles (np.percentile, the published
    definition); the training statistics map them apart."""
    from dacapo.experiments.normalization import for_array

    rng = np.random.default_rng(0)
    image = rng.gamma(2.0, 10.0, (30, 40)).astype(np.float32)
    brighter = 3 * image + 7
    config = NormalizationConfig(statistics="each_array")
    assert config.complete and config.per_array and not config.problems()
    a, b = for_array(config, _in_memory(image)), for_array(config, _in_memory(brighter))
    lo, hi = np.percentile(image.astype(np.float64), [0.5, 99.5])
    assert [a.low, a.high] == pytest.approx([lo, hi])
    assert [b.low, b.high] == pytest.approx([3 * lo + 7, 3 * hi + 7])
    np.testing.assert_allclose(normalize_input(image, a), normalize_input(brighter, b),
                               atol=1e-5)
    np.testing.assert_allclose(normalize_input(image, a), (image - lo) / (hi - lo), atol=1e-6)
    training = NormalizationConfig(low=float(lo), high=float(hi), mean=0.0, std=1.0)
    assert for_array(training, _in_memory(brighter)) is training  # stored statistics kept
    assert not np.allclose(normalize_input(image, training), normalize_input(brighter, training))
    with pytest.raises(ValueError, match="each_array"):
        normalize_input(image, config)  # its statistics come from the array first
    with pytest.raises(ValueError, match="raw: constant"):
        for_array(config, _in_memory(np.full((8, 8), 5.0, np.float32)))
    assert NormalizationConfig(statistics="x").problems()[0].startswith("normalization.statistics")


def test_statistics_of_a_large_array_from_evenly_spread_chunks(tmp_path):
    """Above 16 × max_samples values the statistics come from whole chunks spread over the
    array: on an array tiled by one 8³ chunk-sized pattern every chunk holds the same
    values, so they equal the whole array's (np.percentile) exactly; and the same chunks
    are read every time. The mean: that of the chunks read, the whole array's here."""
    from funlib.geometry import Coordinate
    from funlib.persistence import prepare_ds

    from dacapo.experiments.normalization import array_statistics
    from dacapo.io.arrays import open_array

    # ten intensity levels, ~51 voxels each: the percentiles fall inside a level whether
    # one chunk or all of them are counted
    tile = (10 * np.random.default_rng(1).integers(0, 10, (8, 8, 8))).astype(np.float32)
    data = np.tile(tile, (4, 5, 6))  # 61440 values > 16 × 500
    ds = prepare_ds(str(tmp_path / "big.zarr" / "raw"), shape=data.shape,
                    offset=Coordinate(0, 0, 0), voxel_size=Coordinate(1, 1, 1),
                    dtype=data.dtype, chunk_shape=(8, 8, 8), mode="w")
    ds[ds.roi] = data
    array = open_array(str(tmp_path / "big.zarr" / "raw"), "raw")
    assert tuple(array.chunk_shape) == (8, 8, 8)
    config = NormalizationConfig(statistics="each_array")
    sampled = array_statistics(array, config, max_samples=500)
    whole = np.percentile(data.astype(np.float64), [0.5, 99.5])
    assert [sampled["low"], sampled["high"]] == pytest.approx(whole.tolist())
    assert sampled["mean"] == pytest.approx(float(data.mean()), rel=1e-6)
    assert array_statistics(array, config, max_samples=500) == sampled
    full = array_statistics(array, config, max_samples=10_000)  # read whole
    assert [full["low"], full["high"]] == pytest.approx(whole.tolist())


def test_each_array_run_predicts_an_affine_copy_the_same(tmp_path, tiny_data, tiny_run,
                                                         write_array):
    """A run trained with ``statistics: each_array`` stores no statistics, and its
    prediction of the validation raw and of ``3 raw + 7`` (float32) are the same; a run with
    the training statistics predicts them apart."""
    from funlib.persistence import open_ds

    from dacapo.pipeline.predict import predict
    from dacapo.pipeline.predict_options import PredictOptions
    from dacapo.runs.run_dir import RunDir
    from dacapo.training.loop import train_run

    container = tiny_data(tmp_path)
    vraw = open_ds(f"{container}/validate/raw", mode="r")
    data = np.asarray(vraw[:]).astype(np.float32)
    write_array(tmp_path / "bright.zarr" / "raw", 3 * data + 7, tuple(vraw.voxel_size),
                tuple(vraw.roi.offset))
    options = PredictOptions(num_workers=0, progress=False, padding="none")
    outputs = {}
    for statistics in ("each_array", "training"):
        rc = tiny_run(container, name=f"tiny_{statistics}", num_iterations=2,
                      checkpoint_interval=2,
                      normalization=NormalizationConfig(statistics=statistics))
        run_dir = train_run(rc, tmp_path / "runs", progress=False)
        stored = RunDir(run_dir.path).load_config()
        assert (stored.normalization.low is None) == (statistics == "each_array")
        outputs[statistics] = [
            np.asarray(predict(stored, run_dir.checkpoint_path(2), raw,
                               tmp_path / f"{statistics}_{i}.zarr" / "p", options)[:])
            for i, raw in enumerate((f"{container}/validate/raw",
                                     str(tmp_path / "bright.zarr" / "raw")))]
    same, other = outputs["each_array"], outputs["training"]
    np.testing.assert_allclose(same[0], same[1], atol=1e-4)
    assert np.abs(other[0] - other[1]).max() > 1e-3  # the 2-step model varies ~0.01
