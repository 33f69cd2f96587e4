"""A nested config given something else than a mapping, and a list field given something
else than a list, are refused naming the field and what was given (cattrs alone: "unknown
error ('str' object has no attribute 'keys')", and a string read as the list of its
letters)."""

from __future__ import annotations

import attr
import pytest

from dacapo.errors import ConfigError
from dacapo.io.config_yaml import from_dict


@attr.s
class Inner:
    a: int = attr.ib(default=1)
    b: str = attr.ib(default="x")


@attr.s
class Outer:
    inner: Inner = attr.ib(factory=Inner)
    maybe: Inner | None = attr.ib(default=None)
    names: list[str] = attr.ib(factory=list)
    nested: list[list[int]] | None = attr.ib(default=None)


@pytest.mark.parametrize("data, message", [
    ({"maybe": "percentile"},
     "expected a mapping (Inner: fields a, b), got the string 'percentile' @ Outer.maybe"),
    ({"inner": 3}, "expected a mapping (Inner: fields a, b), got the int 3 @ Outer.inner"),
    ({"inner": [1]}, "expected a mapping (Inner: fields a, b), got a list @ Outer.inner"),
    ({"inner": None}, "expected a mapping (Inner: fields a, b), got null (nothing) @ Outer.inner"),
    ({"names": "cytoplasm"}, "expected a list, got the string 'cytoplasm' @ Outer.names"),
    ({"names": {"a": 1}}, "expected a list, got a mapping @ Outer.names"),
    ({"nested": [[1], "2"]}, "expected a list, got the string '2' @ Outer.nested[1]"),
])
def test_wrong_kind_of_value_names_field_and_value(data, message):
    with pytest.raises(ConfigError) as info:
        from_dict(data, Outer)
    assert str(info.value) == message


def test_right_kinds_as_before():
    o = from_dict({"maybe": {"a": 2}, "names": ["a", "b"], "nested": [[1, 2], (3,)]}, Outer)
    assert (o.maybe, o.names, o.nested, o.inner) == (Inner(2), ["a", "b"], [[1, 2], [3]],
                                                     Inner())
    assert from_dict({"maybe": None}, Outer).maybe is None


def test_a_run_config_with_normalization_as_a_string():
    from dacapo.experiments.run_config import RunConfig  # registers the run's classes

    data = {"type": "RunConfig", "name": "r", "normalization": "percentile"}
    with pytest.raises(ConfigError) as info:
        from_dict(data, RunConfig)
    assert str(info.value).endswith(
        "expected a mapping (NormalizationConfig: fields method, lower_percentile, "
        "upper_percentile, low, high, statistics, mean, std), got the string 'percentile' @ "
        "RunConfig.normalization")
