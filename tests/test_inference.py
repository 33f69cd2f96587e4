"""Engines and precisions of the prediction forward pass (`dacapo.inference`) against the
model's own eval-mode fp32 forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pipeline_fixtures import tiny_unet

from dacapo.errors import InputError
from dacapo.experiments.tasks import AffinitiesTaskConfig
from dacapo.inference import check_options, make_forward, onnx_available, resolve_engine


@pytest.fixture(scope="module")
def model_and_input():
    task = AffinitiesTaskConfig("affs", neighborhood=[(1, 0, 0), (0, 1, 0), (0, 0, 1)],
                                lsds=True).build()
    torch.manual_seed(0)
    model = task.create_model(tiny_unet()).eval()
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
    np.testing.assert_allclose(y, reference, atol=1e-5)
    model.to(memory_format=torch.contiguous_format)


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
    assert resolve_engine("auto", "fp32", cpu) == ("onnx" if onnx_available() else "torch")
    assert resolve_engine("auto", "bf16", cpu) == "torch"
    assert resolve_engine("auto", "fp32", torch.device("cuda")) == "torch"
