"""The configuration reference (`dacapo config-help`, docs/configuration.md) and the
unknown-field error of config files."""

from __future__ import annotations

from pathlib import Path

import attr
import pytest
import yaml
from click.testing import CliRunner

from dacapo.cli.config_help import KINDS, config_classes, reference_markdown, reference_text
from dacapo.cli.main import cli
from dacapo.io.config_yaml import ConfigError, from_yaml

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_committed_reference_is_up_to_date():
    assert DOC.read_text() == reference_markdown(), (
        "docs/configuration.md is stale: run `dacapo config-help --markdown > docs/configuration.md`"
    )


def test_every_field_of_every_kind_is_documented():
    classes = config_classes()
    assert list(classes) == KINDS
    names = {c.__name__ for group in classes.values() for c in group}
    assert {"DistanceTaskConfig", "AffinitiesTaskConfig", "PretrainedTaskConfig", "CNNectomeUNetConfig",
            "TrainerConfig", "AugmentConfig", "DataSplitConfig", "DatasetConfig", "RunConfig"} <= names
    doc = DOC.read_text()
    for group in classes.values():
        for cls in group:
            assert f"### {cls.__name__}" in doc
            for f in attr.fields(cls):
                assert f.metadata.get("help_text"), f"{cls.__name__}.{f.name} has no help_text"
                assert f"| `{f.name}` |" in doc


def test_config_help_command():
    runner = CliRunner()
    out = runner.invoke(cli, ["config-help", "trainer"])
    assert out.exit_code == 0
    lines = out.output.splitlines()
    assert lines[0].startswith("TrainerConfig  [trainer]")
    assert any(line.split()[:3] == ["batch_size", "int", "="] for line in lines)
    assert "Crops per training batch." in out.output
    tasks = runner.invoke(cli, ["config-help", "tasks"]).output
    for name in ("DistanceTaskConfig", "OneHotTaskConfig", "AffinitiesTaskConfig"):
        assert f"{name}  [task]" in tasks
    one = runner.invoke(cli, ["config-help", "distancetask"]).output
    assert one == reference_text("DistanceTaskConfig") and "clip_distance" in one and "Trainer" not in one
    assert "required" in one.split("clip_distance", 1)[1].splitlines()[0]
    bad = runner.invoke(cli, ["config-help", "nonsense"])
    assert bad.exit_code == 2 and "kinds: run, task" in bad.output and len(bad.output.splitlines()) == 1
    assert runner.invoke(cli, ["config-help", "--markdown"]).output == reference_markdown()


RUN = {
    "type": "RunConfig", "name": "r",
    "task_config": {"type": "DistanceTaskConfig", "name": "d", "channels": ["a"],
                    "clip_distance": 10, "tol_distance": 10},
    "architecture_config": {"type": "DummyArchitectureConfig", "name": "a", "num_in_channels": 1,
                            "num_out_channels": 1},
    "datasplit_config": {"train": [], "validate": []},
}


@pytest.mark.parametrize("where,field,cls,hint", [
    ("trainer_config", "augmentation", "TrainerConfig", "augment"),
    ("task_config", "scale_facter", "DistanceTaskConfig", "scale_factor"),
    (None, "num_iteration", "RunConfig", "num_iterations"),
])
def test_unknown_field_names_it_and_the_valid_ones(tmp_path, where, field, cls, hint):
    data = yaml.safe_load(yaml.safe_dump(RUN))
    target = data if where is None else data.setdefault(where, {})
    target[field] = 1
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    import dacapo.io.config_yaml as conv

    with pytest.raises(ConfigError) as e:
        from_yaml(path)
    message = str(e.value)
    valid = [f.name for f in attr.fields(conv._registry[cls])]
    assert f"unknown field '{field}' of {cls} (did you mean '{hint}'?)" in message
    assert f"valid fields: {', '.join(valid)}" in message
    result = CliRunner().invoke(cli, ["verify", str(path)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert f"'{field}'" in result.output and ", ".join(valid) in result.output
