"""The bioimage.io description (``rdf.yaml``, spec 0.5) of an exported run: tensors with
their axes, sizes and preprocessing, weights, citations and dacapo's own config
(`dacapo.tools.export.bioimageio` writes the files it names)."""

from __future__ import annotations

import getpass
import re
from pathlib import Path

import attr
import numpy as np

from dacapo.experiments.normalization import NormalizationConfig
from dacapo.experiments.packages import CALLABLE
from dacapo.experiments.run_config import RunConfig
from dacapo.io.config_yaml import to_dict

DEFAULT_LICENSE = "CC-BY-4.0"
UNET_CITATION = (
    "Ronneberger, Fischer, Brox. U-Net: Convolutional Networks for Biomedical Image "
    "Segmentation. MICCAI 2015.", "10.1007/978-3-319-24574-4_28",
)
LSD_CITATION = (
    "Sheridan et al. Local shape descriptors for neuron segmentation. Nature Methods 20, "
    "295-303 (2023).", "10.1038/s41592-022-01711-z",
)
ARCHITECTURE_FILE = "dacapo_unet.py"
_UNITS = {"nm": "nanometer", "nanometer": "nanometer", "um": "micrometer", "µm": "micrometer",
          "micrometer": "micrometer", "mm": "millimeter", "millimeter": "millimeter",
          "angstrom": "angstrom", "pm": "picometer", "m": "meter", "meter": "meter"}


@attr.s(auto_attribs=True, frozen=True)
class PackageFacts:
    """What a package describes: the run and checkpoint, the model's tensors and sizes.

    ``grids``: per spatial axis (min, step, output offset) of the accepted input sizes;
    ``norm``: the raw's (gain, offset) or None; ``kwargs``: the standalone UNet's."""

    rc: RunConfig
    iteration: int
    criterion: str
    parameters: dict
    channels: list[str]
    in_channels: int
    dims: int
    axis_ids: list[str]
    unit: str | None
    grids: list
    voxel_size: list[int]
    out_voxel_size: list[int]
    raw_dtype: np.dtype
    norm: tuple[float, float] | NormalizationConfig | None
    kwargs: dict
    torch_version: str


def need_spec() -> None:
    """ValueError with the install command when ``bioimageio.spec`` is missing."""
    try:
        import bioimageio.spec  # noqa: F401  # lazy: optional, slow to import
    except ImportError as e:
        raise ValueError(
            "export: needs the bioimageio.spec package (pip install 'bioimageio.spec==0.5.*')"
        ) from e


def _preprocessing(norm, axes: list[str]) -> list:
    """float32, the normalisation ``norm`` (a ``(gain, offset)`` linear map, None, or a
    per-array `NormalizationConfig`, applied per sample over ``axes``), float32."""
    from bioimageio.spec.model import v0_5 as bio  # lazy

    def as_float32():
        return bio.EnsureDtypeDescr(kwargs=bio.EnsureDtypeKwargs(dtype="float32"))

    steps: list = [as_float32()]
    if isinstance(norm, NormalizationConfig):
        ids = [bio.AxisId(a) for a in axes]
        if norm.method == "percentile":
            steps.append(bio.ScaleRangeDescr(kwargs=bio.ScaleRangeKwargs(
                axes=ids, min_percentile=norm.lower_percentile,
                max_percentile=norm.upper_percentile)))
        else:
            steps.append(bio.ZeroMeanUnitVarianceDescr(
                kwargs=bio.ZeroMeanUnitVarianceKwargs(axes=ids)))
    elif norm is not None and norm != (1.0, 0.0):
        steps.append(bio.ScaleLinearDescr(kwargs=bio.ScaleLinearKwargs(gain=norm[0], offset=norm[1])))
    return steps + [as_float32()]


def raw_axis_ids(raw, dims: int) -> list[str]:
    """The raw's spatial axis names as bioimage.io axis ids (else z, y, x / d0, d1, ...)."""
    names = [str(n).rstrip("^").lower() for n in list(raw.axis_names)[-dims:]]
    if len(set(names)) == dims and all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in names) \
            and not {"batch", "channel"} & set(names):
        return names
    return ["z", "y", "x"][-dims:] if dims <= 3 else [f"d{i}" for i in range(dims)]


def raw_unit(raw, dims: int) -> str | None:
    """The raw's spatial unit as a bioimage.io unit (None: mixed or unknown)."""
    units = [str(u) for u in list(raw.units or [])[-dims:]]
    if len(units) == dims and len(set(units)) == 1:
        return _UNITS.get(units[0])
    return None


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


#: the ``dacapo export`` option of a description field or sub-description (by its title)
_OPTIONS = {"license": "--license", "name": "--name", "description": "--description",
            "authors": "--author", "Author": "--author", "cite": "--cite", "CiteEntry": "--cite"}


def validation_line(error, model=None) -> str:
    """``export: <option or field>: <value>: <problem>`` of the first error of a pydantic
    ``ValidationError`` of a description; ``model`` (the described class): its field's help
    replaces a list of allowed values (SPDX licences: hundreds)."""
    err = error.errors(include_url=False)[0]
    # the field path without pydantic's union and validator steps ('function-after[...]')
    path = [str(p) for p in err["loc"]
            if isinstance(p, int) or re.fullmatch(r"[A-Za-z_]\w*", str(p))]
    where = _OPTIONS.get(error.title) or _OPTIONS.get(path[0] if path else "") \
        or ".".join(path) or error.title
    value = err.get("input")
    problem = err["msg"]
    if err["type"] == "literal_error":
        info = getattr(model, "model_fields", {}).get(path[0]) if path else None
        text = re.sub(r"\[([^\]]*)\]\(([^)]*)\)", r"\1 (\2)",
                      (info and info.description) or "").split("\n")[0].rstrip(".")
        problem = "not allowed" + (f"; expected {text[:1].lower()}{text[1:]}" if text else "")
    if isinstance(value, (str, int, float)):
        problem = f"{value!r}: {problem}"
    line = f"export: {where}: {problem}"
    return line if len(line) <= 300 else line[:297] + "..."


def _name(text: str) -> str:
    """A bioimage.io name: letters, digits, ``_+- ()``, 5 to 64 characters."""
    text = re.sub(r"[^A-Za-z0-9_+\- ()]", "_", text)[:64]
    return text if len(text) >= 5 else (text + "_model")


def describe_model(facts: PackageFacts, folder: Path, authors=(), license: str = DEFAULT_LICENSE,
                   citations=(), name: str | None = None, description: str | None = None):
    """The bioimage.io ``ModelDescr`` of the files in ``folder`` (README.md, weights,
    architecture, test and sample tensors); call inside a ``ValidationContext(root=folder)``."""
    from bioimageio.spec.model import v0_5 as bio  # lazy

    rc, unit, dims, channels = facts.rc, facts.unit, facts.dims, facts.channels
    n_in = facts.in_channels
    in_axes = [bio.BatchAxis(), bio.ChannelAxis(
        channel_names=["raw"] if n_in == 1 else [f"raw_{i}" for i in range(n_in)])]
    out_axes = [bio.BatchAxis(), bio.ChannelAxis(channel_names=channels)]
    for a, (lo, step, offset), v, o in zip(facts.axis_ids, facts.grids, facts.voxel_size,
                                           facts.out_voxel_size):
        in_axes.append(bio.SpaceInputAxis(id=bio.AxisId(a), size=bio.ParameterizedSize(min=lo, step=step),
                                          scale=float(v), unit=unit))
        out_axes.append(bio.SpaceOutputAxis(
            id=bio.AxisId(a), scale=float(o), unit=unit,
            size=bio.SizeReference(tensor_id=bio.TensorId("raw"), axis_id=bio.AxisId(a),
                                   offset=int(offset))))
    lsds = bool(getattr(getattr(rc.task_config, "sub_task_config", rc.task_config), "lsds", False))
    return bio.ModelDescr(
        name=_name(name or f"dacapo {rc.name}"),
        description=description or (
            f"{type(rc.task_config).__name__.removesuffix('Config')} model trained with "
            f"dacapo on {', '.join(d.name for d in rc.datasplit_config.train)}: predicts "
            f"{', '.join(channels[:12])}{' ...' if len(channels) > 12 else ''} from "
            f"{dims}D raw (voxel size {tuple(facts.voxel_size)}{' ' + unit if unit else ''})."),
        authors=[bio.Author(name=a) for a in (authors or [getpass.getuser()])],
        cite=_citations(citations, lsds),
        license=license,
        documentation=bio.FileDescr(source=folder / "README.md"),
        tags=["dacapo", "unet", f"{dims}d", "segmentation", "pytorch"],
        inputs=[bio.InputTensorDescr(
            id=bio.TensorId("raw"), axes=in_axes,
            data=bio.IntervalOrRatioDataDescr(type=str(facts.raw_dtype)),
            test_tensor=bio.FileDescr(source=folder / "test_input.npy"),
            sample_tensor=bio.FileDescr(source=folder / "sample_input.tif"),
            preprocessing=_preprocessing(facts.norm, ["channel", *facts.axis_ids]))],
        outputs=[bio.OutputTensorDescr(
            id=bio.TensorId("prediction"), axes=out_axes,
            data=bio.IntervalOrRatioDataDescr(type="float32"),
            test_tensor=bio.FileDescr(source=folder / "test_output.npy"),
            sample_tensor=bio.FileDescr(source=folder / "sample_output.tif"))],
        weights=bio.WeightsDescr(
            pytorch_state_dict=bio.PytorchStateDictWeightsDescr(
                source=folder / "weights.pt",
                architecture=bio.ArchitectureFromFileDescr(
                    source=folder / ARCHITECTURE_FILE, callable=CALLABLE, kwargs=facts.kwargs),
                pytorch_version=facts.torch_version),
            torchscript=bio.TorchscriptWeightsDescr(
                source=folder / "weights_torchscript.pt", parent="pytorch_state_dict",
                pytorch_version=facts.torch_version)),
        config={"dacapo": {
            "run": rc.name, "iteration": int(facts.iteration), "criterion": facts.criterion,
            "parameters": facts.parameters, "task_config": to_dict(rc.task_config),
            "architecture_config": to_dict(rc.architecture_config),
            "channels": channels, "voxel_size": facts.voxel_size,
        }},
    )
