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
