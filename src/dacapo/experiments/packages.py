"""A dacapo model as a bioimage.io package's architecture, and reading such a package back.

`standalone_kwargs(model)` gives the arguments of `DacapoUNet` (in `cnnectome_unet.py`, the
file packages ship) that rebuild a dacapo `Model` (CNNectome UNet body + convolution head
+ eval activation) with the same state-dict keys; a package stores them as its
architecture ``kwargs``. `load_package_state` reads the weights of a package written by
``dacapo export`` after comparing those arguments and the channel names with a run's, so
a `PretrainedTaskConfig` can start from a shared model (no bioimageio library needed).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import torch
import yaml
from torch import nn

from .architectures import cnnectome_unet

#: the file bioimage.io packages ship as their architecture, and its callable
SOURCE_FILE = Path(cnnectome_unet.__file__)
CALLABLE = "DacapoUNet"


def _activation(module: nn.Module | None) -> tuple[str, int]:
    if module is None or isinstance(module, nn.Identity):
        return "identity", 0
    if isinstance(module, nn.Sigmoid):
        return "sigmoid", 0
    if isinstance(module, nn.Softmax) and module.dim == 1:
        return "softmax", 0
    if type(module).__name__ in ("HotDistanceActivation", "SigmoidFirst"):
        return "sigmoid_first", int(module.num_channels)
    raise ValueError(
        f"bioimage.io packages: eval activation {type(module).__name__} has no standalone "
        "equivalent (identity, sigmoid, softmax over channels, sigmoid on the first channels)"
    )


def standalone_kwargs(model) -> dict:
    """`DacapoUNet` arguments of a dacapo `Model` whose body is a CNNectome UNet."""
    arch = model.architecture
    if not hasattr(arch, "unet_kwargs"):
        raise ValueError(
            f"bioimage.io packages: architecture {arch.name!r} ({type(arch).__name__}) is not a "
            "CNNectome UNet; only CNNectomeUNetConfig models are supported"
        )
    head = model.head
    if not isinstance(head, (nn.Conv2d, nn.Conv3d)):
        raise ValueError(f"bioimage.io packages: head {type(head).__name__} is not a convolution")
    kernel = {int(k) for k in head.kernel_size}
    if len(kernel) != 1:
        raise ValueError(f"bioimage.io packages: head kernel {tuple(head.kernel_size)} is not cubic")
    activation, channels = _activation(model.eval_activation)
    return {
        **arch.unet_kwargs(),
        "out_channels": int(head.out_channels),
        "head_kernel_size": kernel.pop(),
        "activation": activation,
        "activation_channels": channels,
    }


def kwargs_differences(package: dict, run: dict) -> list[str]:
    """``name package-value (package) vs run-value (run)`` for each argument that differs."""
    out = []
    for key in sorted(set(package) | set(run)):
        a, b = package.get(key, "(none)"), run.get(key, "(none)")
        if _plain(a) != _plain(b):
            out.append(f"{key} {_plain(a)} (package) vs {_plain(b)} (run)")
    return out


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def is_package(path) -> bool:
    """Whether ``path`` is a zip holding a bioimage.io description (rdf.yaml/bioimageio.yaml)."""
    path = Path(path)
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n in z.namelist() for n in ("rdf.yaml", "bioimageio.yaml"))


def read_rdf(path) -> dict:
    """The package's description (its rdf.yaml / bioimageio.yaml) as a dict."""
    with zipfile.ZipFile(path) as z:
        name = "bioimageio.yaml" if "bioimageio.yaml" in z.namelist() else "rdf.yaml"
        return yaml.safe_load(z.read(name))


def load_package_state(path, run_kwargs: dict, run_channels: list[str]) -> dict:
    """The state dict of a dacapo bioimage.io package, after checking that its architecture
    arguments and channels equal the run's; one-line ValueError naming what differs."""
    path = Path(path)
    rdf = read_rdf(path)
    entry = (rdf.get("weights") or {}).get("pytorch_state_dict")
    if not entry:
        raise ValueError(f"weights: package {path.name} has no pytorch_state_dict weights")
    arch = entry.get("architecture") or {}
    if arch.get("callable") != CALLABLE:
        raise ValueError(
            f"weights: package {path.name}'s architecture is {arch.get('callable')!r} from "
            f"{arch.get('source') or arch.get('import_from')!r}, not a dacapo export ({CALLABLE})"
        )
    problems = [f"architecture {d}" for d in kwargs_differences(arch.get("kwargs") or {}, run_kwargs)]
    outputs = rdf.get("outputs") or [{}]
    names = next((a.get("channel_names") for a in outputs[0].get("axes", [])
                  if a.get("type") == "channel"), None)
    if names is not None and list(names) != list(run_channels):
        problems.append(f"channels {list(names)} (package) vs {list(run_channels)} (run)")
    if problems:
        raise ValueError(f"weights: package {path.name} does not match this run: "
                         + "; ".join(problems))
    source = str(entry["source"])
    with zipfile.ZipFile(path) as z:
        if source not in z.namelist():
            raise ValueError(f"weights: package {path.name} lacks its weights file {source!r}")
        state = torch.load(io.BytesIO(z.read(source)), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"weights: {source} in {path.name} is not a state dict")
    return state
