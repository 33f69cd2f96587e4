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
  `dacapo.ops.unet_sizes`); preprocessing = the training normalisation
  (`dacapo.tools.export.raw_normalization`);
* output ``prediction``: the task's channel names, the output voxel size as scale, size =
  the input's minus the valid-padding context (``SizeReference`` offset);
* test input: a centred crop of the run's (first) validation raw; test output: dacapo's
  own prediction on it (``normalize_raw`` + the dacapo model), so a passing
  ``bioimageio.core.test_model`` shows that the package reproduces dacapo;
* documentation ``README.md`` generated from the run (task, data, normalisation, sizes,
  best scores from ``best.json``, post-processing parameters to use, how to fine-tune);
* ``config.dacapo``: the task and architecture configs, run name, iteration, parameters
  (the description: `dacapo.tools.export.model_descr`).

Authors, licence and citations come from the caller; defaults: the user's login name,
CC-BY-4.0, and the U-Net paper (plus the LSD paper for LSD models) by their DOIs.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import tifffile
import torch
from funlib.geometry import Coordinate, Roi

from dacapo.errors import InputError
from dacapo.experiments.architectures.cnnectome_unet import DacapoUNet
from dacapo.experiments.packages import SOURCE_FILE, standalone_kwargs
from dacapo.io.arrays import open_array, read_array
from dacapo.ops.unet_sizes import unet_axes_grid
from dacapo.runs.class_parameters import output_checkpoint_and_parameters
from dacapo.runs.run_dir import RunDir
from dacapo.runs.scores import main_criterion, parameters_dict
from dacapo.tools.export.documentation import documentation
from dacapo.tools.export.model_descr import (
    ARCHITECTURE_FILE,
    DEFAULT_LICENSE,
    PackageFacts,
    describe_model,
    need_spec,
    raw_axis_ids,
    raw_unit,
    validation_line,
)
from dacapo.tools.export.raw_normalization import normalize, training_normalization

logger = logging.getLogger(__name__)


#: (message regex, category, module regex) of library warnings an export raises although
#: nothing is wrong: bioimageio.spec, looking for remote files to cache before it validates
#: the description, tries each local file entry ({source: README.md, sha256: ...}) as a
#: stand-alone FileDescr, fails (relative path, no root there) and says so, twice per file
HARMLESS_WARNINGS = [
    (r"Found mapping with 'source' and .sha256' keys", UserWarning,
     r"bioimageio\.spec\._internal\.io"),
]


@contextmanager
def known_harmless_warnings():
    """Silence `HARMLESS_WARNINGS` (each by message, category and module) in the block;
    every other warning passes."""
    with warnings.catch_warnings():
        for message, category, module in HARMLESS_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category, module=module)
        yield


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


def _load_model(rc, task, state: dict):
    base = getattr(task, "sub_task", task)  # a Pretrained run: its sub-task builds the model
    model = base.create_model(rc.architecture_config)
    model.load_state_dict(state)
    model.eval()
    return model


def _test_tensors(model, kwargs: dict, raw, run_path: Path):
    """(test input, dacapo's prediction on it, the TorchScript model, the size grids, the
    raw normalisation (`training_normalization`)): the
    input a centred crop of ``raw`` of the largest accepted size within the model's eval
    shape; the standalone and TorchScript models checked against dacapo's on it."""
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
    norm = training_normalization(run_path, raw.dtype)
    x = torch.from_numpy(np.ascontiguousarray(normalize(data, run_path, raw.dtype)))[None]
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
    return data, prediction, scripted, grids, norm


def export_run(run_dir, output, iteration: int | None = None, criterion: str | None = None,
               authors=(), license: str = DEFAULT_LICENSE, citations=(), name: str | None = None,
               description: str | None = None) -> Path:
    """Write the bioimage.io package of a run's checkpoint to ``output`` (a .zip); see the
    module docstring. The checkpoint is chosen as by ``dacapo apply``."""
    need_spec()
    from bioimageio.spec import ValidationContext, save_bioimageio_package  # lazy
    from bioimageio.spec.model.v0_5 import ModelDescr  # lazy
    from pydantic import ValidationError  # lazy

    rd = RunDir(run_dir)
    shown, output = output, Path(output).absolute()
    if output.suffix != ".zip":
        raise ValueError(f"output: {str(output)!r} must end in .zip")
    rc = rd.load_config()
    task = rc.task_config.build()
    crit = criterion or main_criterion(task)
    iteration, parameters = output_checkpoint_and_parameters(rd, task, iteration, criterion)
    state = rd.load_checkpoint(iteration)["model"]
    model = _load_model(rc, task, state)
    kwargs = standalone_kwargs(model)

    datasets = list(rc.datasplit_config.validate) or list(rc.datasplit_config.train)
    raw = open_array(datasets[0].raw, f"dataset {datasets[0].name!r}: raw")
    dims = model.dims
    data, prediction, scripted, grids, norm = _test_tensors(model, kwargs, raw, rd.path)
    channels = list(task.predictor.output_array_type.channels)
    if len(channels) != kwargs["out_channels"]:
        channels = [f"c{i}" for i in range(kwargs["out_channels"])]
    facts = PackageFacts(
        rc=rc, iteration=iteration, criterion=crit, parameters=parameters_dict(parameters),
        channels=channels, in_channels=data.shape[0], dims=dims, axis_ids=raw_axis_ids(raw, dims),
        unit=raw_unit(raw, dims), grids=grids, voxel_size=[int(v) for v in raw.voxel_size],
        out_voxel_size=[int(v) for v in model.scale(raw.voxel_size)], raw_dtype=raw.dtype,
        norm=norm, kwargs=kwargs,
        torch_version=torch.__version__.split("+")[0],
    )
    best = rd.load_best()

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
        doc = documentation(rc, task, iteration, crit, facts.parameters, best, grids,
                            facts.axis_ids, facts.voxel_size, facts.out_voxel_size, raw.dtype,
                            facts.norm, channels, facts.unit)
        (tmp / "README.md").write_text(doc)
        with ValidationContext(root=tmp, perform_io_checks=True), known_harmless_warnings():
            try:
                descr = describe_model(facts, tmp, authors, license, citations, name, description)
            except ValidationError as e:  # an option's value (--license...): one line
                raise InputError(validation_line(e, ModelDescr)) from e
            partial = tmp / "package.zip"
            save_bioimageio_package(descr, output_path=partial)
        if output.exists():
            logger.info("overwriting %s", shown, extra={"notice": True})
        os.replace(partial, output)  # complete or absent, never half-written
    logger.info("exported %s iteration %d to %s", rc.name, iteration, output)
    return output
