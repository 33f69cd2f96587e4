"""Every task config: construct with the seed's attributes, verify, build, create a model
(2D and 3D UNet), forward a batch; YAML round trip; invalid configs are rejected."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from funlib.geometry import Coordinate

from dacapo.experiments.architectures import CNNectomeUNetConfig, DummyArchitectureConfig
from dacapo.experiments.tasks import (
    AffinitiesTaskConfig,
    DistanceTaskConfig,
    DummyTaskConfig,
    HotDistanceTaskConfig,
    InnerDistanceTaskConfig,
    OneHotTaskConfig,
    PretrainedTaskConfig,
    Task,
    TaskConfig,
)
from dacapo.experiments.tasks.evaluators import EvaluationScores
from dacapo.experiments.tasks.post_processors import PostProcessorParameters
from dacapo.io.config_yaml import ConfigError, from_dict, from_yaml, to_dict, to_yaml

NBH_3D = [Coordinate(1, 0, 0), Coordinate(0, 1, 0), Coordinate(0, 0, 1), Coordinate(0, 0, 3)]
NBH_2D = [Coordinate(1, 0), Coordinate(0, 1), Coordinate(0, 4)]


def configs(dims: int) -> dict[str, tuple[TaskConfig, int]]:
    """Config of every kind (seed attributes) and its expected head channel count."""
    nbh = NBH_3D if dims == 3 else NBH_2D
    lsd_channels = 10 if dims == 3 else 6
    return {
        "distance": (
            DistanceTaskConfig(
                name="distance",
                channels=["mito", "er"],
                clip_distance=40.0,
                tol_distance=8.0,
                scale_factor=20.0,
                mask_distances=True,
                clipmin=0.05,
                clipmax=0.95,
            ),
            2,
        ),
        "inner_distance": (
            InnerDistanceTaskConfig(
                name="inner", channels=["cell"], clip_distance=40.0, tol_distance=8.0, scale_factor=20.0
            ),
            1,
        ),
        "hot_distance": (
            HotDistanceTaskConfig(
                name="hot",
                channels=["mito", "er", "nuc"],
                clip_distance=40.0,
                tol_distance=8.0,
                scale_factor=20.0,
                mask_distances=False,
                kernel_size=3,
            ),
            6,
        ),
        "one_hot": (OneHotTaskConfig(name="onehot", classes=["bg", "mito", "er"], kernel_size=1), 3),
        "affinities": (
            AffinitiesTaskConfig(
                name="affs",
                neighborhood=nbh,
                lsds=False,
                lsds_to_affs_weight_ratio=1.0,
                affs_weight_clipmin=0.05,
                affs_weight_clipmax=0.95,
                lsd_weight_clipmin=0.05,
                lsd_weight_clipmax=0.95,
                background_as_object=True,
            ),
            len(nbh),
        ),
        "affinities_lsds": (
            AffinitiesTaskConfig(name="affs_lsds", neighborhood=nbh, lsds=True, num_lsd_voxels=3),
            len(nbh) + lsd_channels,
        ),
        "dummy": (DummyTaskConfig(name="dummy", embedding_dims=4, detection_threshold=0.5), 4),
    }


def unet(dims: int) -> CNNectomeUNetConfig:
    if dims == 3:
        return CNNectomeUNetConfig(
            name="unet3d",
            input_shape=(20, 20, 20),
            fmaps_out=4,
            fmaps_in=1,
            num_fmaps=2,
            fmap_inc_factor=2,
            downsample_factors=[(2, 2, 2)],
        )
    return CNNectomeUNetConfig(
        name="unet2d",
        input_shape=(28, 28),
        fmaps_out=4,
        fmaps_in=1,
        num_fmaps=2,
        fmap_inc_factor=2,
        downsample_factors=[(2, 2)],
    )


KINDS = list(configs(3))


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_build_and_forward(kind: str, dims: int) -> None:
    config, channels = configs(dims)[kind]
    ok, reason = config.verify()
    assert ok == (kind != "dummy"), reason
    task = config.build()
    assert isinstance(task, Task)
    for part in ("predictor", "loss", "post_processor", "evaluator"):
        assert getattr(task, part) is not None
    assert task.channels
    params = task.parameters
    assert params and all(isinstance(p, PostProcessorParameters) for p in params)
    assert len({p.id for p in params}) == len(params)
    assert len(set(params)) == len(params)  # hashable and distinct
    scores = task.evaluation_scores
    assert isinstance(scores, EvaluationScores) and scores.criteria
    architecture = unet(dims)
    model = task.create_model(architecture)
    shape = tuple(architecture.input_shape)
    out = model(torch.zeros((2, 1, *shape)))
    assert out.shape[:2] == (2, channels)
    assert out.dim() == dims + 2
    assert model.compute_output_shape(shape) == (channels, Coordinate(out.shape[2:]))


@pytest.mark.parametrize("kind", KINDS)
def test_yaml_round_trip(kind: str, tmp_path: Path) -> None:
    config, _ = configs(3)[kind]
    path = tmp_path / "task.yaml"
    to_yaml(config, path)
    loaded = from_yaml(path)
    assert loaded == config
    assert type(loaded) is type(config)
    assert from_dict(to_dict(config), TaskConfig) == config


def test_pretrained(tmp_path: Path) -> None:
    sub, channels = configs(3)["distance"]
    architecture = unet(3)
    donor = sub.build().create_model(architecture)
    weights = tmp_path / "weights.pt"
    torch.save(donor.state_dict(), weights)
    config = PretrainedTaskConfig(name="pre", sub_task_config=sub, weights=weights)
    assert config.verify() == (True, "valid")
    task = config.build()
    assert task.channels == sub.build().channels
    assert [str(p) for p in task.parameters] == [str(p) for p in sub.build().parameters]
    model = task.create_model(architecture)
    for name, value in donor.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    assert from_yaml(to_yaml(config)) == config

    # another architecture's weights: a clear error naming the file and the mismatch
    other = configs(3)["one_hot"][0]
    torch.save(other.build().create_model(architecture).state_dict(), weights)
    with pytest.raises(ValueError, match="weights: .*does not fit.*shape mismatch"):
        task.create_model(architecture)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="weights"):
        task.create_model(architecture)
    ok, reason = config.verify()
    assert not ok and "weights: file not found" in reason


def _distance(**kw):
    base = dict(name="d", channels=["a"], clip_distance=10.0, tol_distance=2.0)
    return DistanceTaskConfig(**{**base, **kw})


def _affs(**kw):
    base = dict(name="a", neighborhood=[(1, 0, 0), (0, 1, 0)])
    return AffinitiesTaskConfig(**{**base, **kw})


INVALID = [
    (_distance(channels=[]), "channels: must not be empty"),
    (_distance(channels=["a", "a"]), "duplicate"),
    (_distance(scale_factor=0), "scale_factor: must be > 0"),
    (_distance(clip_distance=-1), "clip_distance: must be > 0"),
    (_distance(tol_distance=-1), "tol_distance: must be >= 0"),
    (_distance(clipmin=0.0), "clipmin: must lie in (0, 1)"),
    (_distance(clipmax=1.5), "clipmax: must lie in (0, 1)"),
    (_distance(clipmin=0.6, clipmax=0.4), "clipmin (0.6) must be smaller than clipmax"),
    (_distance(name=""), "name: must be a non-empty string"),
    (InnerDistanceTaskConfig(name="i", channels=[], clip_distance=1.0, tol_distance=1.0), "channels"),
    (InnerDistanceTaskConfig(name="i", channels=["a"], clip_distance=1.0, tol_distance=1.0, scale_factor=-2), "scale_factor"),
    (HotDistanceTaskConfig(name="h", channels=["a", "a"], clip_distance=1.0, tol_distance=1.0), "duplicate"),
    (HotDistanceTaskConfig(name="h", channels=["a"], clip_distance=1.0, tol_distance=1.0, kernel_size=2), "kernel_size"),
    (OneHotTaskConfig(name="o", classes=[]), "classes: must not be empty"),
    (OneHotTaskConfig(name="o", classes=["x", "y", "x"]), "classes: duplicate"),
    (OneHotTaskConfig(name="o", classes=["x"]), "at least 2 classes"),
    (_affs(neighborhood=[]), "neighborhood: must not be empty"),
    (_affs(neighborhood=[(1, 0, 0), (0, 1)]), "mixed dimensionality"),
    (_affs(neighborhood=[(1,), (2,)]), "must be 2D or 3D"),
    (_affs(neighborhood=[(0, 0, 0), (0, 1, 0)]), "zero offset"),
    (_affs(num_lsd_voxels=0), "num_lsd_voxels: must be an integer >= 1"),
    (_affs(downsample_lsds=0), "downsample_lsds: must be an integer >= 1"),
    (_affs(affs_weight_clipmin=0.9, affs_weight_clipmax=0.1), "affs_weight_clipmin"),
    (_affs(lsd_weight_clipmax=1.0), "lsd_weight_clipmax: must lie in (0, 1)"),
    (_affs(min_fragment_sizes=[]), "min_fragment_sizes"),
    (_affs(min_fragment_sizes=[0, -1]), "min_fragment_sizes"),
    (PretrainedTaskConfig(name="p", sub_task_config=_distance(), weights="/nonexistent/w.pt"), "weights: file not found"),
    (PretrainedTaskConfig(name="p", sub_task_config=_distance(channels=[]), weights="/nonexistent/w.pt"), "sub_task_config: channels"),
]


@pytest.mark.parametrize("config,reason", INVALID, ids=[r for _, r in INVALID])
def test_invalid_configs(config: TaskConfig, reason: str) -> None:
    ok, message = config.verify()
    assert not ok
    assert reason in message
    with pytest.raises(ValueError, match="invalid"):
        config.build()


def test_dummy_verify_false_but_builds() -> None:
    config = DummyTaskConfig(name="x", embedding_dims=2, detection_threshold=0.5)
    ok, reason = config.verify()
    assert not ok and "tests only" in reason
    assert config.build().predictor.num_output_channels == 2


@pytest.mark.parametrize(
    "data,message",
    [
        ({"type": "DistanceTaskConfig", "name": "d", "channels": ["a"], "clip_distance": 1, "tol_distance": 1, "scale_facter": 2}, "scale_facter"),
        ({"type": "DistanceTaskConfig", "name": "d", "channels": ["a"], "clip_distance": "far", "tol_distance": 1}, "clip_distance"),
        ({"type": "DistanceTaskConfig", "name": "d", "clip_distance": 1, "tol_distance": 1}, "channels"),
        ({"type": "DistansTaskConfig", "name": "d"}, "DistansTaskConfig"),
        ({"name": "d"}, "type"),
        ({"type": "PretrainedTaskConfig", "name": "p", "weights": "w", "sub_task_config": {"type": "Nope"}}, "Nope"),
        ({"type": "CNNectomeUNetConfig", "name": "u", "input_shape": [1, 2], "fmaps_out": 1, "fmaps_in": 1, "num_fmaps": 2, "fmap_inc_factor": 2}, "downsample_factors"),
    ],
)
def test_bad_config_files(data: dict, message: str, tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message):
        from_yaml(path)


@pytest.mark.parametrize("architecture", [unet(2), unet(3), DummyArchitectureConfig(name="dummy", num_in_channels=2, num_out_channels=3)])
def test_architecture_round_trip(architecture) -> None:
    assert from_yaml(to_yaml(architecture)) == architecture


@pytest.mark.parametrize("values,low,high,allow_empty,expected", [
    ([0.1, 0.5], 0, 1, False, []),
    ((0.5,), 0, 1, False, []),
    ([2.0, 40], 0, float("inf"), False, []),
    ([], 0, 1, True, []),
    ([], 0, 1, False, ["t: must be a non-empty list of numbers, got []"]),
    (0.5, 0, 1, True, ["t: must be a list of numbers, got 0.5"]),
    ([0.0, 0.5], 0, 1, False, ["t: every value must lie in (0, 1), got [0.0, 0.5]"]),
    ([0.5, 1], 0, 1, False, ["t: every value must lie in (0, 1), got [0.5, 1]"]),
    ([True], -1, 2, False, ["t: every value must lie in (-1, 2), got [True]"]),
    ([float("nan")], 0, float("inf"), False, ["t: every value must lie in (0, inf), got [nan]"]),
    (["0.5"], 0, 1, False, ["t: every value must lie in (0, 1), got ['0.5']"]),
    ([0.5, 0.5], 0, 1, False, ["t: duplicate values in [0.5, 0.5]"]),
])
def test_check_number_list(values, low, high, allow_empty, expected) -> None:
    from dacapo.experiments.tasks.task_config import check_number_list

    assert check_number_list("t", values, low, high, allow_empty=allow_empty) == expected
