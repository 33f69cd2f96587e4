"""Engines and precisions of the prediction forward pass (`dacapo.pipeline.engines`) against the
model's own eval-mode fp32 forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dacapo.errors import InputError
from dacapo.experiments.tasks import AffinitiesTaskConfig
from dacapo.pipeline.engines import check_options, make_forward, onnx_available, resolve_engine
from dacapo.pipeline.predict import predict
from dacapo.pipeline.predict_options import PredictOptions
from dacapo.runs.model_builder import build_model


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "batch_norm"])
def model_and_input(request, randomise_batch_norm, tiny_unet):
    task = AffinitiesTaskConfig("affs", neighborhood=[(1, 0, 0), (0, 1, 0), (0, 0, 1)],
                                lsds=True).build()
    torch.manual_seed(0)
    model = task.create_model(tiny_unet(batch_norm=request.param)).eval()
    randomise_batch_norm(model)
    x = np.random.default_rng(0).random((1, 1, *model.eval_input_shape), dtype=np.float32)
    with torch.no_grad():
        reference = model(torch.from_numpy(x)).numpy()
    return model, x, reference


@pytest.mark.parametrize("engine", ["torch", "channels_last", "onnx"])
def test_fp32_engines_equal_the_model(model_and_input, engine):
    if engine == "onnx" and not onnx_available():
        pytest.skip("onnxruntime is not installed")
    model, x, reference = model_and_input
    y = make_forward(model, engine)(x)
    assert y.dtype == np.float32 and y.shape == reference.shape
    assert y.flags.c_contiguous  # C order from every engine (channels-last's made so by torch)
    np.testing.assert_allclose(y, reference, atol=1e-5)
    # the caller's model (the training loop's, when validating) keeps its memory layout
    assert all(p.is_contiguous() for p in model.parameters())


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_low_precision_is_close_to_fp32(model_and_input, precision):
    model, x, reference = model_and_input
    y = make_forward(model, "torch", precision)(x)
    assert y.dtype == np.float32
    error = np.abs(y - reference).max()
    assert 0 < error < 0.05  # really in low precision, and still the model's output


def test_options_are_checked():
    with pytest.raises(InputError, match="engine: must be one of"):
        check_options("tensorrt", "fp32")
    with pytest.raises(InputError, match="precision: must be one of"):
        check_options("torch", "fp8")
    with pytest.raises(InputError, match="engine 'onnx' runs in fp32"):
        check_options("onnx", "bf16")
    cpu = torch.device("cpu")
    # 3D networks: channels-last torch; one section at a time: ONNX Runtime when it pays
    assert resolve_engine("auto", "fp32", cpu) == "channels_last"
    assert resolve_engine("auto", "fp32", cpu, input_shape=(44, 44, 44)) == "channels_last"
    sections = "onnx" if onnx_available() else "torch"
    assert resolve_engine("auto", "fp32", cpu, input_shape=(1, 96, 96)) == sections
    assert resolve_engine("auto", "fp32", cpu, input_shape=(96, 96)) == sections
    assert resolve_engine("auto", "fp32", cpu, blocks=2, input_shape=(96, 96)) == "torch"
    assert resolve_engine("auto", "fp32", cpu, blocks=2, cached=True,
                          input_shape=(96, 96)) == sections
    assert resolve_engine("auto", "bf16", cpu) == "torch"
    assert resolve_engine("auto", "fp32", torch.device("cuda")) == "torch"


def test_predict_onnx_equals_torch_and_caches_the_export(tmp_path, tiny_data, tiny_run):
    if not onnx_available():
        pytest.skip("onnxruntime is not installed")
    container = tiny_data(tmp_path)
    rc = tiny_run(container)
    checkpoint = tmp_path / "checkpoints" / "00000000.pt"
    checkpoint.parent.mkdir()
    model = build_model(rc)
    torch.save({"model": model.state_dict()}, checkpoint)
    raw = container / "validate" / "raw"
    outputs = {}
    for name, engine in (("torch", "torch"), ("onnx", "onnx"), ("cached", "onnx"),
                         ("auto", "auto")):
        out = predict(rc, checkpoint, raw, tmp_path / f"{name}.zarr" / "p",
                      PredictOptions(num_workers=0, engine=engine, progress=False))
        outputs[name] = out[out.roi]
        if name == "onnx":  # the export is cached beside the checkpoint ...
            cached = list((checkpoint.parent / ".onnx").glob("00000000_*.onnx"))
            assert len(cached) == 1
            stamp = cached[0].stat().st_mtime_ns
    assert cached[0].stat().st_mtime_ns == stamp  # ... and read, not rewritten
    assert outputs["torch"].std() > 0
    np.testing.assert_allclose(outputs["onnx"], outputs["torch"], atol=1e-5)
    np.testing.assert_array_equal(outputs["cached"], outputs["onnx"])
    np.testing.assert_allclose(outputs["auto"], outputs["torch"], atol=1e-5)  # channels-last
