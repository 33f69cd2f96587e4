"""Integer config fields take integers: cattrs alone turned 40.5 into 40 and refused
``forty`` without showing it; now the message names the field and the value."""

from __future__ import annotations

import attr
import pytest

from dacapo.errors import ConfigError
from dacapo.io.config_yaml import from_dict


@attr.s
class Numbers:
    count: int = attr.ib(default=1)
    flag: bool = attr.ib(default=False)
    rate: float = attr.ib(default=1.0)
    sizes: list[int] = attr.ib(factory=list)
    limit: int | None = attr.ib(default=None)



@pytest.mark.parametrize("data,message", [
    ({"count": 40.5}, "expected an integer, got 40.5 @ Numbers.count"),
    ({"count": "forty"}, "expected an integer, got 'forty' @ Numbers.count"),
    ({"count": float("inf")}, "expected an integer, got inf @ Numbers.count"),
    ({"count": True}, "expected an integer, got True @ Numbers.count"),
    ({"sizes": [0, 1.5]}, "expected an integer, got 1.5 @ Numbers.sizes[1]"),
    ({"limit": 2.5}, "expected an integer, got 2.5 @ Numbers.limit"),
])
def test_non_integers_are_refused_with_field_and_value(data, message):
    with pytest.raises(ConfigError) as info:
        from_dict(data, Numbers)
    assert str(info.value) == message


def test_integral_values_and_other_fields_as_before():
    n = from_dict({"count": 40.0, "sizes": ["3", 4], "limit": None, "flag": 1, "rate": 3},
                  Numbers)
    assert (n.count, n.sizes, n.limit, n.flag, n.rate) == (40, [3, 4], None, True, 3.0)
    assert type(n.count) is int and n.flag is True
    assert from_dict({"count": 10**20}, Numbers).count == 10**20
