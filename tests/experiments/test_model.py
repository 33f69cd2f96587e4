"""Model: eval activation only in eval mode, output shapes, voxel scale; UNet shapes."""

from __future__ import annotations

import pytest
import torch
from funlib.geometry import Coordinate

from dacapo.experiments.architectures import CNNectomeUNetConfig
from dacapo.experiments.model import Model, conv_head


def unet(**kw) -> CNNectomeUNetConfig:
    base = dict(
        name="u",
        input_shape=(44, 44, 44),
        fmaps_out=3,
        fmaps_in=1,
        num_fmaps=2,
        fmap_inc_factor=2,
        downsample_factors=[(2, 2, 2)],
    )
    return CNNectomeUNetConfig(**{**base, **kw})


def test_eval_activation_only_in_eval_mode() -> None:
    torch.manual_seed(0)
    arch = unet()
    model = Model(arch, conv_head(3, 2, 3), torch.nn.Sigmoid())
    x = torch.randn(1, 1, 44, 44, 44)
    model.train()
    logits = model(x)
    model.eval()
    with torch.no_grad():
        probs = model(x)
    assert torch.allclose(torch.sigmoid(logits.detach()), probs, atol=1e-6)


@pytest.mark.parametrize(
    "kw,input_shape,expected",
    [
        # valid: 2 convs (−4) down, pool /2, 2 convs (−4), up ×2, 2 convs (−4):
        # 44 → 40 → 20 → 16 → 32 → 28
        ({}, (44, 44, 44), (28, 28, 28)),
        ({"padding": "same"}, (32, 32, 32), (32, 32, 32)),
        ({"input_shape": (44, 44), "downsample_factors": [(2, 2)]}, (44, 44), (28, 28)),
        ({"downsample_factors": [(1, 2, 2)]}, (44, 44, 44), (32, 28, 28)),
        ({"constant_upsample": False}, (44, 44, 44), (28, 28, 28)),
    ],
)
def test_unet_output_shapes(kw, input_shape, expected) -> None:
    arch = unet(**kw)
    model = Model(arch, conv_head(3, 5, len(input_shape)))
    assert model.compute_output_shape(input_shape) == (5, Coordinate(expected))
    y = model(torch.zeros((1, 1, *input_shape)))
    assert tuple(y.shape[2:]) == expected


def test_scale_with_upsample_factors() -> None:
    arch = unet(padding="same", input_shape=(16, 16, 16), upsample_factors=[(1, 2, 2)])
    model = Model(arch, conv_head(3, 1, 3))
    assert model.scale(Coordinate(8, 8, 8)) == Coordinate(8, 4, 4)
    assert model.compute_output_shape((16, 16, 16))[1] == Coordinate(16, 32, 32)


def test_eval_input_shape() -> None:
    arch = unet(eval_shape_increase=(8, 8, 8))
    assert arch.eval_input_shape == Coordinate(52, 52, 52)
    assert unet().eval_input_shape == Coordinate(44, 44, 44)


@pytest.mark.parametrize("kw", [
    {},
    {"downsample_factors": [(1, 2, 2), (2, 2, 2)]},
    {"downsample_factors": [(3, 3, 3)], "constant_upsample": False},
    {"kernel_size_down": [[(1, 3, 3), (1, 3, 3)], [(3, 3, 3)] * 2],
     "kernel_size_up": [[(1, 3, 3), (3, 3, 3)]], "downsample_factors": [(1, 2, 2)]},
    {"padding": "same", "upsample_factors": [(1, 2, 2)]},
])
def test_shape_arithmetic_equals_the_real_forward(kw) -> None:
    """`compute_output_shape` (the layers' size arithmetic, no forward pass) equals the
    shape of a real forward pass over a range of inputs, and fails exactly where the
    forward pass fails (an empty feature map, an upsampled map larger than its skip)."""
    model = Model(unet(**kw), conv_head(3, 4, 3, kernel_size=3)).eval()
    outcomes = set()
    for shape in [(12, 20, 28), (21, 21, 21), (30, 36, 44), (8, 44, 45), (5, 6, 7), (44, 76, 76)]:
        try:
            with torch.no_grad():
                real = tuple(model(torch.zeros((1, 1, *shape))).shape[1:])
        except RuntimeError:
            real = None
        model.__dict__.pop("_shape_cache", None)
        try:
            c, out = model.compute_output_shape(shape)
            computed = (c, *out)
        except ValueError:
            computed = None
        assert computed == real, (kw, shape)
        outcomes.add(real is None)
    assert False in outcomes, kw  # (some input fits every network)
