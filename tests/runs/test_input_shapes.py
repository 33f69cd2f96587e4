"""A UNet input shape the network cannot use (`dacapo.runs.input_shapes`): ``dacapo verify``
reports it in one line naming the field and the nearest valid shapes, and ``dacapo train``
refuses it before it writes anything. The suggested shapes are checked on the real network:
its output centred on the input, and tiles of a larger input predicting exactly the
matching crops of the larger prediction."""

from __future__ import annotations

import re
from pathlib import Path

import attr
import pytest
import torch
from click.testing import CliRunner

from dacapo.cli.main import cli
from dacapo.experiments.architectures import CNNectomeUNetConfig
from dacapo.io.config_yaml import to_yaml
from dacapo.runs.verify import run_problems

SHAPE = r"(\([\d, ]+\))"
NEAREST = re.compile(rf"the nearest valid shapes are {SHAPE} and {SHAPE}$")
SMALLEST = re.compile(rf"the smallest valid shape is {SHAPE}$")


@pytest.fixture(scope="module")
def container(tmp_path_factory, tiny_data) -> Path:
    return tiny_data(tmp_path_factory.mktemp("data"))


def _unet_2d(shape: tuple[int, ...]) -> CNNectomeUNetConfig:
    """The user's 2D UNet: 3 downsampling levels by 2, two 3x3 convolutions per level."""
    return CNNectomeUNetConfig(name="unet2d", input_shape=shape, fmaps_in=1, fmaps_out=2,
                               num_fmaps=2, fmap_inc_factor=2,
                               downsample_factors=[(2, 2), (2, 2), (2, 2)])


def _cases(tiny_unet) -> list[tuple[CNNectomeUNetConfig, tuple | None, tuple]]:
    """(architecture with a bad input_shape, nearest valid shape below (None: none is), above):
    the 2D UNet's sizes are 92 + 8 n, the tiny UNet's 5 + n in z and 14 + 2 n in y, x."""
    return [
        (_unet_2d((81, 81)), None, (92, 92)),
        (_unet_2d((97, 95)), (92, 92), (100, 100)),
        (attr.evolve(tiny_unet(), input_shape=(8, 29, 29)), (8, 28, 28), (8, 30, 30)),
    ]


def _fits(arch: CNNectomeUNetConfig, tiny_run, container: Path) -> bool:
    """Whether the real network at ``arch.input_shape`` runs, gives an output centred on its
    input (an even size difference per axis) and tiles of an input one pooling step larger (at
    offsets 0 and one step) predict exactly the crops of that input's prediction."""
    model = tiny_run(container).task_config.build().create_model(arch).double().eval()
    shape = list(arch.input_shape)
    step = [1] * len(shape)
    for factors in arch.downsample_factors:
        step = [s * int(f) for s, f in zip(step, factors)]
    torch.manual_seed(0)
    big = torch.rand(1, 1, *[s + t for s, t in zip(shape, step)], dtype=torch.float64)
    try:
        with torch.no_grad():
            full = model(big)
            tiles = [model(big[(..., *[slice(o * t, o * t + s) for s, t in zip(shape, step)])])
                     for o in (0, 1)]
    except RuntimeError:  # too small for the network
        return False
    out = list(tiles[0].shape[2:])
    if any((s - o) % 2 or o < 1 for s, o in zip(shape, out)):
        return False
    for o, tile in zip((0, 1), tiles):
        ref = full[(..., *[slice(o * t, o * t + n) for t, n in zip(step, out)])]
        if ref.shape != tile.shape or not torch.allclose(ref, tile, atol=1e-9):
            return False
    return True


def test_verify_names_the_field_and_valid_shapes(container, tiny_run, tiny_unet):
    for arch, below, above in _cases(tiny_unet):
        problems = run_problems(tiny_run(container, architecture_config=arch))
        assert len(problems) == 1, problems
        message = problems[0]
        assert "\n" not in message
        assert message.startswith(f"architecture_config.input_shape: {tuple(arch.input_shape)} "
                                  "is not a valid input of this UNet ("), message
        nearest, smallest = NEAREST.search(message), SMALLEST.search(message)
        if below is None:
            assert smallest and smallest[1] == str(above), message
        else:
            assert nearest and (nearest[1], nearest[2]) == (str(below), str(above)), message
        assert not _fits(arch, tiny_run, container)
        for shape in (s for s in (below, above) if s is not None):
            fixed = attr.evolve(arch, input_shape=shape)
            assert _fits(fixed, tiny_run, container), shape
            assert not any("input_shape" in p for p in
                           run_problems(tiny_run(container, architecture_config=fixed),
                                        check_data=False))


def test_the_2d_messages(container, tiny_run):
    (message,) = run_problems(tiny_run(container, architecture_config=_unet_2d((81, 81))))
    assert message == (
        "architecture_config.input_shape: (81, 81) is not a valid input of this UNet (axes 0 "
        "and 1: level 0's 77 voxels do not divide by its downsampling factor 2); the smallest "
        "valid shape is (92, 92)")
    (message,) = run_problems(tiny_run(container, architecture_config=_unet_2d((97, 95))))
    assert message == (
        "architecture_config.input_shape: (97, 95) is not a valid input of this UNet (axis 0: "
        "level 0's 93 voxels do not divide by its downsampling factor 2, axis 1: level 0's 91 "
        "voxels do not divide by its downsampling factor 2); the nearest valid shapes are "
        "(92, 92) and (100, 100)")


def test_a_bad_prediction_shape_names_eval_shape_increase(container, tiny_run, tiny_unet):
    arch = attr.evolve(tiny_unet(), eval_shape_increase=(0, 9, 9))
    (message,) = run_problems(tiny_run(container, architecture_config=arch), check_data=False)
    assert message.startswith("architecture_config.eval_shape_increase: (0, 9, 9) makes the "
                              "prediction input (8, 37, 37), not a valid input"), message
    assert message.endswith("the nearest valid increases are (0, 8, 8) and (0, 10, 10)")
    for increase in ((0, 8, 8), (0, 10, 10)):
        fixed = attr.evolve(arch, input_shape=(8, 28 + increase[1], 28 + increase[2]))
        assert _fits(fixed, tiny_run, container)


def test_cli_verify_and_train_refuse_before_writing(container, tiny_run, tiny_unet, tmp_path):
    """(8, 29, 29) builds and fits the data, and passed ``verify`` before: ``train`` failed
    only when its batches found the output off-centre, after writing the run directory."""
    arch = attr.evolve(tiny_unet(), input_shape=(8, 29, 29))
    rc = tiny_run(container, architecture_config=arch)
    message = "architecture_config.input_shape: (8, 29, 29) is not a valid input of this UNet"
    config, root = tmp_path / "run.yaml", tmp_path / "runs_tmp"
    to_yaml(rc, config)

    result = CliRunner().invoke(cli, ["verify", str(config)])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    lines = result.stderr.splitlines()
    assert lines[0] == f"{config}: invalid" and lines[1].startswith(f"  - {message} ("), lines
    assert lines[1] == f"  - {run_problems(rc)[0]}" and len(lines) == 2

    result = CliRunner().invoke(cli, ["train", str(config), "--root", str(root), "--quiet"])
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output
    assert result.stderr.strip().splitlines() == [f"error: {run_problems(rc)[0]}"]
    assert not (root / rc.name).exists()
