"""The standalone description of a dacapo model: `DacapoUNet` keyword arguments.

`standalone_kwargs(model)` gives the arguments of `dacapo.export.unet_standalone.DacapoUNet`
that rebuild a dacapo `Model` (CNNectome UNet body + convolution head + eval activation)
with the same state-dict keys; a bioimage.io package stores them as its architecture
``kwargs``, and importing a package compares them with the run's (`kwargs_differences`).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

#: the file bioimage.io packages ship as their architecture
SOURCE_FILE = Path(__file__).with_name("unet_standalone.py")
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
        f"export: eval activation {type(module).__name__} has no standalone equivalent "
        "(identity, sigmoid, softmax over channels, sigmoid on the first channels)"
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
        raise ValueError(f"export: head {type(head).__name__} is not a single convolution")
    kernel = {int(k) for k in head.kernel_size}
    if len(kernel) != 1:
        raise ValueError(f"export: head kernel {tuple(head.kernel_size)} is not cubic")
    activation, channels = _activation(model.eval_activation)
    return {
        **arch.unet_kwargs(),
        "out_channels": int(head.out_channels),
        "head_kernel_size": kernel.pop(),
        "activation": activation,
        "activation_channels": channels,
    }


def kwargs_differences(package: dict, run: dict) -> list[str]:
    """``name package-value vs run-value`` for each argument that differs."""
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
