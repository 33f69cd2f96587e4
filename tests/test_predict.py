"""`dacapo.predict`: whole-ROI prediction with padding, and ``none`` = only real context."""

from __future__ import annotations

import numpy as np
import pytest
from funlib.geometry import Coordinate
from pipeline_fixtures import tiny_run, write_array

from dacapo.errors import InputError
from dacapo.geometry import ModelGeometry
from dacapo.predict import predict
from dacapo.runtime import build_model


@pytest.fixture(scope="module")
def model():
    return build_model(tiny_run("unused.zarr")).eval()


def test_a_volume_smaller_than_the_model_input_is_predicted_whole(model, tmp_path):
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
        out = predict(rc, None, raw, tmp_path / f"{padding}.zarr" / "p", model=model,
                      padding=padding, progress=False)
        assert out.roi == out.roi.snap_to_grid(geometry.output_voxel_size)
        assert tuple(out.roi.offset) == (160, 80, 80) and out.roi.shape == Coordinate(shape) * vs
        outs[padding] = out[out.roi]
        assert np.isfinite(outs[padding]).all()
    assert not np.array_equal(outs["reflect"], outs["zero"])  # the padding is what differs
    with pytest.raises(InputError, match="too small for the model"):  # today's behaviour
        predict(rc, None, raw, tmp_path / "none.zarr" / "p", model=model, padding="none",
                progress=False)


def test_none_predicts_only_where_the_context_is_real(model, tmp_path):
    vs = Coordinate(16, 8, 8)
    geometry = ModelGeometry(model, vs, model.eval_input_shape)
    raw = tmp_path / "d.zarr" / "raw"
    write_array(raw, np.random.default_rng(1).integers(0, 255, (16, 48, 48), dtype=np.uint8), vs)
    rc = tiny_run(tmp_path)
    none = predict(rc, None, raw, tmp_path / "n.zarr" / "p", model=model, padding="none",
                   progress=False)
    whole = predict(rc, None, raw, tmp_path / "w.zarr" / "p", model=model, progress=False)
    raw_roi = whole.roi
    assert none.roi == raw_roi.grow(-geometry.context, -geometry.context)
    assert tuple(raw_roi.shape / vs) == (16, 48, 48)
    with pytest.raises(InputError, match="padding: must be one of"):
        predict(rc, None, raw, tmp_path / "x.zarr" / "p", model=model, padding="wrap")
