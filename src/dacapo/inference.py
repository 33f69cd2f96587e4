"""How a model's eval-mode forward pass runs when predicting: engine and precision.

Engines (``dacapo apply --engine``; `dacapo.predict`):

- ``"onnx"``: the model exported once per process and input shape (`torch.onnx.export`,
  static shape) and run by ONNX Runtime on the CPU; fp32, equal to torch's output to
  float rounding (about 1e-7), about 2× torch's speed for the 3D UNets measured
  (docs/performance.md);
- ``"torch"``: `torch.inference_mode`, optionally under `torch.autocast` in ``bf16`` or
  ``fp16`` (`dacapo.runtime.autocast`; about 1e-3 from fp32);
- ``"channels_last"``: torch with the model and input in ``channels_last_3d`` memory;
- ``"compile"``: `torch.compile` (minutes of compilation on first use);
- ``"auto"`` (default): ``onnx`` on a CPU in fp32 when onnxruntime is installed, else
  ``torch``.

The output is always float32, channels first.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import warnings
from collections.abc import Callable

import numpy as np
import torch

from dacapo.errors import InputError
from dacapo.runtime import PRECISIONS, autocast

logger = logging.getLogger(__name__)

ENGINES = ("auto", "onnx", "torch", "channels_last", "compile")

Forward = Callable[[np.ndarray], np.ndarray]


def check_options(engine: str, precision: str) -> None:
    """InputError naming the option when ``engine``/``precision`` are not known or don't mix."""
    if engine not in ENGINES:
        raise InputError(f"engine: must be one of {list(ENGINES)}, got {engine!r}")
    if precision not in PRECISIONS:
        raise InputError(f"precision: must be one of {list(PRECISIONS)}, got {precision!r}")
    if engine == "onnx" and precision != "fp32":
        raise InputError(f"engine 'onnx' runs in fp32; precision {precision!r} needs engine "
                         "'torch'")


def onnx_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def resolve_engine(engine: str, precision: str, device: torch.device) -> str:
    """The engine ``"auto"`` stands for on ``device`` in ``precision``."""
    check_options(engine, precision)
    if engine != "auto":
        if engine == "onnx" and not onnx_available():
            raise InputError("engine 'onnx' needs onnxruntime (pip install onnxruntime onnx)")
        return engine
    if device.type == "cpu" and precision == "fp32" and onnx_available():
        return "onnx"
    return "torch"


def make_forward(model: torch.nn.Module, engine: str = "auto", precision: str = "fp32",
                 threads: int | None = None) -> Forward:
    """A function: input batch ``(1, C, *spatial)`` float32 -> model output float32 (eval
    mode; the model is put in eval mode). ``threads``: ONNX Runtime's intra-op threads
    (default: torch's number of threads)."""
    model.eval()
    device = next(model.parameters()).device
    engine = resolve_engine(engine, precision, device)
    if engine == "onnx":
        return _onnx_forward(model, threads or torch.get_num_threads())
    if engine == "channels_last":
        model = model.to(memory_format=torch.channels_last_3d)
    run = torch.compile(model) if engine == "compile" else model

    def forward(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x)).to(device)
        if engine == "channels_last" and t.ndim == 5:
            t = t.to(memory_format=torch.channels_last_3d)
        with torch.inference_mode(), autocast(precision, device):
            y = run(t)
        return y.float().cpu().numpy()

    return forward


def _onnx_forward(model: torch.nn.Module, threads: int) -> Forward:
    import onnxruntime  # lazy: optional dependency, imported only for this engine

    device = next(model.parameters()).device
    sessions: dict[tuple[int, ...], object] = {}
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1

    def session(shape: tuple[int, ...]):
        if shape not in sessions:
            buffer = io.BytesIO()
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the exporter's deprecation notes
                torch.onnx.export(model, (torch.zeros(shape, device=device),), buffer,
                                  dynamo=False, input_names=["raw"],
                                  output_names=["prediction"])
            sessions[shape] = onnxruntime.InferenceSession(
                buffer.getvalue(), options, providers=["CPUExecutionProvider"])
            logger.info("model exported to ONNX for input %s", shape)
        return sessions[shape]

    def forward(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return session(x.shape).run(None, {"raw": x})[0].astype(np.float32, copy=False)

    return forward
