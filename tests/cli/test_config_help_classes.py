"""Every config class a config file can hold has a ``dacapo config-help`` entry and a
section in docs/configuration.md: the loader's unknown-field errors tell users to run
``dacapo config-help CLASS`` (NormalizationConfig had none)."""

from __future__ import annotations

import typing
from pathlib import Path

import attr
import pytest
from click.testing import CliRunner

from dacapo.cli.config_help import config_classes, find
from dacapo.cli.main import cli
from dacapo.experiments.architectures import ArchitectureConfig
from dacapo.experiments.run_config import RunConfig
from dacapo.experiments.tasks import TaskConfig
from dacapo.io.config_yaml import _registry

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _reachable() -> set[type]:
    """The attrs config classes of the registry and of their fields' types."""
    seen: set[type] = set()

    def walk(t) -> None:
        for arg in typing.get_args(t):
            walk(arg)
        if isinstance(t, type) and attr.has(t) and t not in seen:
            seen.add(t)
            attr.resolve_types(t)
            for f in attr.fields(t):
                walk(f.type)

    for cls in [RunConfig, *_registry.values()]:
        walk(cls)
    return seen - {TaskConfig, ArchitectureConfig}  # the bases: a `type:` names a subclass


def test_every_config_class_has_a_kind_and_a_section():
    documented = {c for group in config_classes().values() for c in group}
    missing = sorted(c.__name__ for c in _reachable() - documented)
    assert missing == []
    assert "### NormalizationConfig" in DOC.read_text()


@pytest.mark.parametrize("kind", ["NormalizationConfig", "normalization"])
def test_config_help_normalization(kind):
    assert find(kind)[0][1][0].__name__ == "NormalizationConfig"
    out = CliRunner().invoke(cli, ["config-help", kind])
    assert out.exit_code == 0, out.output
    assert out.output.startswith("NormalizationConfig  [run]")
    assert "  statistics " in out.output
