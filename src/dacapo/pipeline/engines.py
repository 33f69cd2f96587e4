"""How a model's eval-mode forward pass runs when predicting: engine and precision.

Engines (``dacapo apply --engine``; `dacapo.pipeline.predict`):

- ``"onnx"``: the model exported (`torch.onnx.export`, static input shape) and run by
  ONNX Runtime on the CPU; fp32, equal to torch's output to float rounding (about 1e-7).
  The export (0.5–4 s) is cached beside a checkpoint (`onnx_cache_path`), so workers and
  re-runs of the same checkpoint load it instead;
- ``"torch"``: `torch.inference_mode`, optionally under `torch.autocast` in ``bf16`` or
  ``fp16`` (`dacapo.pipeline.precision.autocast`; about 1e-3 from fp32);
- ``"channels_last"``: torch with a copy of the model and the input in
  ``channels_last_3d`` memory (exact: the same output to float rounding);
- ``"compile"``: `torch.compile` (minutes of compilation on first use);
- ``"auto"`` (default): on a CPU in fp32 the fastest exact engine measured for the kind of
  network (`resolve_engine`): ``channels_last`` for 3D networks, ``onnx`` for networks
  that see one section at a time (when onnxruntime is installed and the export pays: it
  is cached, or the prediction has at least `ONNX_MIN_BLOCKS` blocks); else ``torch``.

The output is always float32, channels first.
"""

from __future__ import annotations

import copy
import importlib.util
import io
import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from dacapo.errors import InputError
from dacapo.io.arrays import atomic_write_bytes
from dacapo.pipeline.precision import PRECISIONS, autocast, channels_last

logger = logging.getLogger(__name__)

ENGINES = ("auto", "onnx", "torch", "channels_last", "compile")
#: ``auto`` exports an uncached model to ONNX for at least this many blocks (the export
#: costs about as much as a few forward passes; ONNX Runtime saves about half of each)
ONNX_MIN_BLOCKS = 8

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


def sectionwise(input_shape) -> bool:
    """A network that segments one section at a time: a 2D input, or a 3D one of depth at
    most 3 (the planned networks of anisotropic volumes: depth 1, or 3 when the first
    convolution sees the neighbouring sections; no valid 3D UNet fits in 3 voxels)."""
    shape = tuple(int(s) for s in input_shape)
    return len(shape) == 2 or (len(shape) == 3 and shape[0] <= 3)


def resolve_engine(engine: str, precision: str, device: torch.device,
                   blocks: int | None = None, cached: bool = False,
                   input_shape=None) -> str:
    """The engine ``"auto"`` stands for on ``device`` in ``precision``, for a prediction of
    ``blocks`` blocks (None: unknown) whose ONNX export is ``cached`` or not, by a model
    whose eval input is ``input_shape`` (None: unknown, taken as 3D).

    On a CPU in fp32 (docs/performance.md, idle 2-core machine, bare forward per block):
    3D networks ``channels_last`` (exact; 0.35 vs torch 0.57 and ONNX 0.70 s for the 8
    tiles of the prediction benchmark, 0.07 vs 0.09 / 0.09 s and 0.22 vs 0.24 / 0.35 s for
    the planned neuron and nuclei UNets); networks of one section at a time (`sectionwise`)
    ONNX Runtime when the export pays (0.32–0.36 vs torch 0.86–0.99 and channels-last
    0.95–1.05 s for the planned membranes UNet), else torch."""
    check_options(engine, precision)
    if engine != "auto":
        if engine == "onnx" and not onnx_available():
            raise InputError("engine 'onnx' needs onnxruntime (pip install onnxruntime onnx)")
        return engine
    if device.type != "cpu" or precision != "fp32":
        return "torch"
    if input_shape is None or not sectionwise(input_shape):
        return "channels_last"
    pays = cached or blocks is None or blocks >= ONNX_MIN_BLOCKS
    return "onnx" if onnx_available() and pays else "torch"


def onnx_cache_path(checkpoint: str | Path, input_shape) -> Path:
    """Where the ONNX export of ``checkpoint`` for ``input_shape`` (voxels) is cached: a
    hidden folder beside the checkpoint, named by its file's size and modification time
    (a rewritten checkpoint gets a new export)."""
    checkpoint = Path(checkpoint)
    stat = checkpoint.stat()
    shape = "x".join(str(int(s)) for s in input_shape)
    return (checkpoint.parent / ".onnx"
            / f"{checkpoint.stem}_{stat.st_size}_{stat.st_mtime_ns}_{shape}.onnx")


def make_forward(model: torch.nn.Module, engine: str = "auto", precision: str = "fp32",
                 threads: int | None = None, cache: Path | None = None) -> Forward:
    """A function: input batch ``(1, C, *spatial)`` float32 -> model output float32 in C
    order (eval mode; the model is put in eval mode). ``threads``: ONNX Runtime's intra-op
    threads (default: torch's number of threads); ``cache``: the ONNX file of this model
    for the input shape it is called with (read if it exists, else written)."""
    model.eval()
    device = next(model.parameters()).device
    engine = resolve_engine(engine, precision, device,
                            cached=cache is not None and cache.is_file(),
                            input_shape=getattr(model, "eval_input_shape", None))
    if engine == "onnx":
        return _onnx_forward(model, threads or torch.get_num_threads(), cache)
    if engine == "channels_last":
        # a copy: the caller's model (the training loop's, when validating) keeps its layout
        model = channels_last(copy.deepcopy(model), 3)
    run = torch.compile(model) if engine == "compile" else model

    def forward(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x)).to(device)
        if engine == "channels_last" and t.ndim == 5:
            t = t.to(memory_format=torch.channels_last_3d)
        with torch.inference_mode(), autocast(precision, device):
            y = run(t)
        # C order, as from every engine: a channels-last output made contiguous by torch
        # (parallel, ~1 ms per 19 × 52³ block) instead of by numpy or zarr in the writer
        return y.float().contiguous().cpu().numpy()

    return forward


def export_onnx(model: torch.nn.Module, shape: tuple[int, ...], cache: Path | None = None) -> bytes:
    """The ONNX model of ``model`` (eval mode) for inputs of ``shape``; read from / written
    to ``cache`` (atomically; an unwritable cache is only logged)."""
    if cache is not None and cache.is_file():
        return cache.read_bytes()
    device = next(model.parameters()).device
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notes
        torch.onnx.export(model.eval(), (torch.zeros(shape, device=device),), buffer,
                          dynamo=False, input_names=["raw"], output_names=["prediction"])
    logger.info("model exported to ONNX for input %s", shape)
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(cache, buffer.getvalue())
        except OSError as e:
            logger.info("ONNX export not cached at %s: %s", cache, e)
    return buffer.getvalue()


def _onnx_forward(model: torch.nn.Module, threads: int, cache: Path | None) -> Forward:
    import onnxruntime  # lazy: optional dependency, imported only for this engine

    sessions: dict[tuple[int, ...], object] = {}
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    # no busy-waiting between runs: the reads and writes of the next block need the cores
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")

    def session(shape: tuple[int, ...]):
        if shape not in sessions:
            data = export_onnx(model, shape, cache if not sessions else None)
            sessions[shape] = onnxruntime.InferenceSession(
                data, options, providers=["CPUExecutionProvider"])
        return sessions[shape]

    def forward(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return session(x.shape).run(None, {"raw": x})[0].astype(np.float32, copy=False)

    return forward
