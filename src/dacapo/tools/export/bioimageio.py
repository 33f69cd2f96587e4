"""Export a trained run as a bioimage.io model package (spec 0.5); `dacapo.experiments.packages`
reads one back (PretrainedTaskConfig weights).

`export_run` writes a zip that runs without dacapo (ilastik, deepImageJ, napari, the
``bioimageio`` tools):

* weights: ``pytorch_state_dict`` (the checkpoint's state dict; architecture = the shipped
  `experiments/architectures/cnnectome_unet.py` as ``dacapo_unet.py``, callable
  ``DacapoUNet``, plain torch) and ``torchscript``
  (`torch.jit.script` of the same model), both in eval form (activation applied);
* input ``raw``: axes batch, channel, then the raw's spatial axes with the voxel size as
  scale; sizes ``min + n * step`` per axis (the sizes the UNet accepts,
  `dacapo.ops.unet_sizes`); preprocessing = the training normalisation (`preprocessing`);
* output ``prediction``: the task's channel names, the output voxel size as scale, size =
  the input's minus the valid-padding context (``SizeReference`` offset);
* test input: a centred crop of the run's (first) validation raw; test output: dacapo's
  own prediction on it (``normalize_raw`` + the dacapo model), so a passing
  ``bioimageio.core.test_model`` shows that the package reproduces dacapo;
* documentation ``README.md`` generated from the run (task, data, normalisation, sizes,
  best scores from ``best.json``, post-processing parameters to use, how to fine-tune);
* ``config.dacapo``: the task and architecture configs, run name, iteration, parameters.

Authors, licence and citations come from the caller; defaults: the user's login name,
CC-BY-4.0, and the U-Net paper (plus the LSD paper for LSD models) by their DOIs.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tifffile
import torch
from funlib.geometry import Coordinate, Roi

from dacapo.experiments.architectures.cnnectome_unet import DacapoUNet
from dacapo.experiments.packages import CALLABLE, SOURCE_FILE, standalone_kwargs
from dacapo.io.arrays import open_array, read_array
from dacapo.io.config_yaml import to_dict
from dacapo.ops.intensity import normalize_raw
from dacapo.ops.normalize import affine_parameters
from dacapo.ops.unet_sizes import unet_axes_grid
from dacapo.runs.run_dir import RunDir
from dacapo.runs.scores import choose_checkpoint_and_parameters, main_criterion, parameters_dict
from dacapo.tools.export.documentation import documentation

logger = logging.getLogger(__name__)

DEFAULT_LICENSE = "CC-BY-4.0"
UNET_CITATION = (
    "Ronneberger, Fischer, Brox. U-Net: Convolutional Networks for Biomedical Image "
    "Segmentation. MICCAI 2015.", "10.1007/978-3-319-24574-4_28",
)
LSD_CITATION = (
    "Sheridan et al. Local shape descriptors for neuron segmentation. Nature Methods 20, "
    "295-303 (2023).", "10.1038/s41592-022-01711-z",
)
#: a run directory may hold the raw normalisation it trained with (linear: x * gain + offset
#: on the raw values as float32); without it, integers are divided by their dtype maximum
NORMALIZATION_FILE = "normalization.json"
ARCHITECTURE_FILE = "dacapo_unet.py"
_UNITS = {"nm": "nanometer", "nanometer": "nanometer", "um": "micrometer", "µm": "micrometer",
          "micrometer": "micrometer", "mm": "millimeter", "millimeter": "millimeter",
          "angstrom": "angstrom", "pm": "picometer", "m": "meter", "meter": "meter"}


def _need_spec():
    try:
        import bioimageio.spec  # noqa: F401  # lazy: optional, slow to import
    except ImportError as e:
        raise ValueError(
            "export: needs the bioimageio.spec package (pip install 'bioimageio.spec==0.5.*')"
        ) from e


# --------------------------------------------------------------------------
# pieces
# --------------------------------------------------------------------------


def training_normalization(run_dir, dtype) -> tuple[float, float] | None:
    """``(gain, offset)`` such that the model input is ``raw.astype(float32) * gain + offset``
    (``None``: raw used as float32 unchanged). From the run's `NORMALIZATION_FILE` when
    present, else the run config's ``normalization`` (statistics of the training raw:
    ``(x - offset) * scale``), else dacapo's `normalize_raw`: integers / dtype maximum."""
    norm = _run_normalization(run_dir)
    if norm is not None:
        return norm
    path = Path(run_dir) / NORMALIZATION_FILE
    if path.is_file():
        data = json.loads(path.read_text())
        try:
            return float(data["gain"]), float(data.get("offset", 0.0))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: expected {{'gain': g, 'offset': o}}, got {data}") from e
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        return 1.0 / float(np.iinfo(dtype).max), 0.0
    if np.issubdtype(dtype, np.floating):
        return None
    raise ValueError(f"export: raw dtype {dtype} is not supported (integers or floats)")


def _run_normalization(run_dir) -> tuple[float, float] | None:
    """``(gain, offset)`` of the run config's percentile / mean-std normalisation, if any."""
    config = RunDir(run_dir).load_config().normalization if (Path(run_dir) / "run.yaml").is_file() \
        else None
    if config is None or config.method == "dtype_max":
        return None
    offset, scale = affine_parameters(config.method, config.stats)
    return scale, -offset * scale


def normalize(data: np.ndarray, run_dir, dtype) -> np.ndarray:
    """The model input for raw ``data`` as in training (see `training_normalization`)."""
    if (Path(run_dir) / NORMALIZATION_FILE).is_file() or _run_normalization(run_dir) is not None:
        gain, offset = training_normalization(run_dir, dtype)
        return data.astype(np.float32) * np.float32(gain) + np.float32(offset)
    return normalize_raw(data)


def _preprocessing(norm: tuple[float, float] | None) -> list:
    from bioimageio.spec.model import v0_5 as bio  # lazy


    def as_float32():
        return bio.EnsureDtypeDescr(kwargs=bio.EnsureDtypeKwargs(dtype="float32"))

    steps: list = [as_float32()]
    if norm is not None and norm != (1.0, 0.0):
        steps.append(bio.ScaleLinearDescr(kwargs=bio.ScaleLinearKwargs(gain=norm[0], offset=norm[1])))
    return steps + [as_float32()]


def _axis_ids(raw, dims: int) -> list[str]:
    names = [str(n).rstrip("^").lower() for n in list(raw.axis_names)[-dims:]]
    if len(set(names)) == dims and all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in names) \
            and not {"batch", "channel"} & set(names):
        return names
    return ["z", "y", "x"][-dims:] if dims <= 3 else [f"d{i}" for i in range(dims)]


def _unit(raw, dims: int) -> str | None:
    units = [str(u) for u in list(raw.units or [])[-dims:]]
    if len(units) == dims and len(set(units)) == 1:
        return _UNITS.get(units[0])
    return None


def crop_shape(grids, eval_shape, raw_shape) -> list[int]:
    """Per axis the largest accepted size ``min + n*step`` <= min(eval shape, raw shape)."""
    shape = []
    for (lo, step, _), want, have in zip(grids, eval_shape, raw_shape):
        limit = min(int(want), int(have))
        if limit < lo:
            raise ValueError(
                f"export: validation raw shape {tuple(raw_shape)} is smaller than the model's "
                f"smallest input {tuple(g[0] for g in grids)}"
            )
        shape.append(lo + (limit - lo) // step * step)
    return shape


def _citations(citations, lsds: bool):
    from bioimageio.spec.generic.v0_3 import CiteEntry  # lazy

    entries = []
    for c in citations or ():
        text, _, ref = c.rpartition("|") if "|" in c else (c, "", "")
        text, ref = text.strip(), ref.strip()
        if not ref:
            raise ValueError(f"--cite: expected 'TEXT|DOI' or 'TEXT|URL', got {c!r}")
        if ref.startswith(("http://", "https://")):
            entries.append(CiteEntry(text=text, url=ref))
        else:
            entries.append(CiteEntry(text=text, doi=ref.removeprefix("doi:")))
    if not entries:
        defaults = [UNET_CITATION] + ([LSD_CITATION] if lsds else [])
        entries = [CiteEntry(text=t, doi=d) for t, d in defaults]
    return entries


def _name(text: str) -> str:
    """A bioimage.io name: letters, digits, ``_+- ()``, 5 to 64 characters."""
    text = re.sub(r"[^A-Za-z0-9_+\- ()]", "_", text)[:64]
    return text if len(text) >= 5 else (text + "_model")


# --------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------


def _load_model(rc, task, state: dict):
    base = getattr(task, "sub_task", task)  # a Pretrained run: its sub-task builds the model
    model = base.create_model(rc.architecture_config)
    model.load_state_dict(state)
    model.eval()
    return model


def export_run(run_dir, output, iteration: int | None = None, criterion: str | None = None,
               authors=(), license: str = DEFAULT_LICENSE, citations=(), name: str | None = None,
               description: str | None = None) -> Path:
    """Write the bioimage.io package of a run's checkpoint to ``output`` (a .zip); see the
    module docstring. The checkpoint is chosen as by ``dacapo apply``."""
    _need_spec()
    from bioimageio.spec import ValidationContext, save_bioimageio_package  # lazy
    from bioimageio.spec.model import v0_5 as bio  # lazy

    rd = RunDir(run_dir)
    output = Path(output).absolute()
    if output.suffix != ".zip":
        raise ValueError(f"output: {str(output)!r} must end in .zip")
    rc = rd.load_config()
    task = rc.task_config.build()
    crit = criterion or main_criterion(task)
    iteration, parameters = choose_checkpoint_and_parameters(rd, task, iteration, criterion)
    state = rd.load_checkpoint(iteration)["model"]
    model = _load_model(rc, task, state)
    kwargs = standalone_kwargs(model)

    datasets = list(rc.datasplit_config.validate) or list(rc.datasplit_config.train)
    raw = open_array(datasets[0].raw, f"dataset {datasets[0].name!r}: raw")
    dims = model.dims
    voxel_size = [int(v) for v in raw.voxel_size]
    out_voxel_size = [int(v) for v in model.scale(raw.voxel_size)]
    grids = unet_axes_grid(kwargs)
    _, out_min = model.compute_output_shape([g[0] for g in grids])
    expected = [g[0] * (v // o) + g[2] for g, v, o in zip(grids, voxel_size, out_voxel_size)]
    if list(out_min) != expected:  # the size arithmetic against the real network
        raise RuntimeError(f"export: output shape {tuple(out_min)} != computed {expected}")
    spatial_shape = list(raw.shape)[-dims:]
    shape = crop_shape(grids, model.eval_input_shape, spatial_shape)
    begin = [(s - c) // 2 for s, c in zip(spatial_shape, shape)]
    roi = Roi(raw.roi.offset + Coordinate(begin) * raw.voxel_size,
              Coordinate(shape) * raw.voxel_size)
    data = read_array(raw, roi)
    if data.ndim == dims:
        data = data[None]
    if data.shape[0] != kwargs["in_channels"]:
        raise ValueError(f"export: raw has {data.shape[0]} channels, the model takes "
                         f"{kwargs['in_channels']}")
    norm = training_normalization(rd.path, raw.dtype)
    x = torch.from_numpy(np.ascontiguousarray(normalize(data, rd.path, raw.dtype)))[None]
    with torch.no_grad():
        prediction = model(x).numpy().astype(np.float32)
        standalone = DacapoUNet(**kwargs)
        standalone.load_state_dict(model.state_dict(), strict=True)
        standalone.eval()
        scripted = torch.jit.script(standalone)
        for other, what in ((standalone(x), "standalone"), (scripted(x), "torchscript")):
            err = float(np.max(np.abs(other.numpy() - prediction)))
            if not err <= 1e-5:
                raise RuntimeError(f"export: the {what} model differs from dacapo's by {err}")

    channels = list(task.predictor.output_array_type.channels)
    if len(channels) != kwargs["out_channels"]:
        channels = [f"c{i}" for i in range(kwargs["out_channels"])]
    axis_ids = _axis_ids(raw, dims)
    unit = _unit(raw, dims)
    lsds = bool(getattr(getattr(rc.task_config, "sub_task_config", rc.task_config), "lsds", False))
    params = parameters_dict(parameters)
    best = rd.load_best()
    torch_version = torch.__version__.split("+")[0]

    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{output.name}.", dir=output.parent) as tmp:
        tmp = Path(tmp)
        shutil.copyfile(SOURCE_FILE, tmp / ARCHITECTURE_FILE)
        torch.save(dict(model.state_dict()), tmp / "weights.pt")
        scripted.save(str(tmp / "weights_torchscript.pt"))
        np.save(tmp / "test_input.npy", data[None])
        np.save(tmp / "test_output.npy", prediction)
        tifffile.imwrite(tmp / "sample_input.tif", data.squeeze())
        tifffile.imwrite(tmp / "sample_output.tif", prediction[0].squeeze())
        doc = documentation(rc, task, iteration, crit, params, best, grids, axis_ids,
                            voxel_size, out_voxel_size, raw.dtype, norm, channels, unit)
        (tmp / "README.md").write_text(doc)

        in_axes = [bio.BatchAxis(), bio.ChannelAxis(
            channel_names=["raw"] if data.shape[0] == 1 else [f"raw_{i}" for i in range(data.shape[0])])]
        out_axes = [bio.BatchAxis(), bio.ChannelAxis(channel_names=channels)]
        for a, (lo, step, offset), v, o in zip(axis_ids, grids, voxel_size, out_voxel_size):
            in_axes.append(bio.SpaceInputAxis(id=bio.AxisId(a), size=bio.ParameterizedSize(min=lo, step=step),
                                              scale=float(v), unit=unit))
            out_axes.append(bio.SpaceOutputAxis(
                id=bio.AxisId(a), scale=float(o), unit=unit,
                size=bio.SizeReference(tensor_id=bio.TensorId("raw"), axis_id=bio.AxisId(a),
                                       offset=int(offset))))
        with ValidationContext(root=tmp, perform_io_checks=True):
            descr = bio.ModelDescr(
                name=_name(name or f"dacapo {rc.name}"),
                description=description or (
                    f"{type(rc.task_config).__name__.removesuffix('Config')} model trained with "
                    f"dacapo on {', '.join(d.name for d in rc.datasplit_config.train)}: predicts "
                    f"{', '.join(channels[:12])}{' ...' if len(channels) > 12 else ''} from "
                    f"{dims}D raw (voxel size {tuple(voxel_size)}{' ' + unit if unit else ''})."),
                authors=[bio.Author(name=a) for a in (authors or [getpass.getuser()])],
                cite=_citations(citations, lsds),
                license=license,
                documentation=bio.FileDescr(source=tmp / "README.md"),
                tags=["dacapo", "unet", f"{dims}d", "segmentation", "pytorch"],
                inputs=[bio.InputTensorDescr(
                    id=bio.TensorId("raw"), axes=in_axes,
                    data=bio.IntervalOrRatioDataDescr(type=str(raw.dtype)),
                    test_tensor=bio.FileDescr(source=tmp / "test_input.npy"),
                    sample_tensor=bio.FileDescr(source=tmp / "sample_input.tif"),
                    preprocessing=_preprocessing(norm))],
                outputs=[bio.OutputTensorDescr(
                    id=bio.TensorId("prediction"), axes=out_axes,
                    data=bio.IntervalOrRatioDataDescr(type="float32"),
                    test_tensor=bio.FileDescr(source=tmp / "test_output.npy"),
                    sample_tensor=bio.FileDescr(source=tmp / "sample_output.tif"))],
                weights=bio.WeightsDescr(
                    pytorch_state_dict=bio.PytorchStateDictWeightsDescr(
                        source=tmp / "weights.pt",
                        architecture=bio.ArchitectureFromFileDescr(
                            source=tmp / ARCHITECTURE_FILE, callable=CALLABLE, kwargs=kwargs),
                        pytorch_version=torch_version),
                    torchscript=bio.TorchscriptWeightsDescr(
                        source=tmp / "weights_torchscript.pt", parent="pytorch_state_dict",
                        pytorch_version=torch_version)),
                config={"dacapo": {
                    "run": rc.name, "iteration": int(iteration), "criterion": crit,
                    "parameters": params, "task_config": to_dict(rc.task_config),
                    "architecture_config": to_dict(rc.architecture_config),
                    "channels": channels, "voxel_size": voxel_size,
                }},
            )
            partial = tmp / "package.zip"
            save_bioimageio_package(descr, output_path=partial)
        os.replace(partial, output)  # complete or absent, never half-written
    logger.info("exported %s iteration %d to %s", rc.name, iteration, output)
    return output
