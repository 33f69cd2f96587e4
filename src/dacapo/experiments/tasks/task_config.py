"""Base class of all task configurations, and what a task asks of its ground truth.

Every subclass registers itself with `dacapo.io.config_yaml` (by class name), so a YAML
file can name it in its ``type`` field, and must say what it requires of the GT
(`gt_rules`), which `dacapo.runs.verify` checks before a run starts.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import attr

from dacapo.io.config_yaml import register


@attr.s(frozen=True)
class GTRules:
    """What a task requires of its ground truth (checked by `dacapo.runs.verify`).

    - ``scan``: read the GT's values (finite, non-negative, the ranges below);
    - ``integer_labels``: instance ids, stored as integers (not floats);
    - ``num_channels``: GT channels accepted besides one (one array per channel);
      with ``num_channels > 1`` a single GT array holds class ids ``0..num_channels``
      (channel i is ``gt == i + 1``);
    - ``num_classes``: class ids lie in ``[0, num_classes)`` and are integral;
    - ``channel_names``: names shown in messages (channels or classes);
    - ``neighborhood``: affinity offsets, which need as many entries as the data has dims.
    """

    scan: bool = attr.ib(default=True)
    integer_labels: bool = attr.ib(default=False)
    num_channels: int = attr.ib(default=1)
    num_classes: int | None = attr.ib(default=None)
    channel_names: tuple[str, ...] = attr.ib(default=(), converter=tuple)
    neighborhood: tuple | None = attr.ib(default=None)


@attr.s
class TaskConfig(ABC):
    """Base class for task configurations: one subclass per task kind.

    Subclasses set the class attribute ``task_type`` (the `Task` class to build) and
    implement ``problems()``, the list of reasons the config is invalid.
    """

    task_type: ClassVar[type]

    name: str = attr.ib(metadata={"help_text": "A unique name for this task."})

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        register(cls, TaskConfig)

    @abstractmethod
    def gt_rules(self) -> GTRules:
        """What this task requires of its ground truth."""

    def problems(self) -> list[str]:
        """Reasons this config is invalid (empty when valid)."""
        problems = []
        if not isinstance(self.name, str) or not self.name:
            problems.append("name: must be a non-empty string")
        return problems + self._problems()

    @abstractmethod
    def _problems(self) -> list[str]:
        """Task-specific validation."""

    def verify(self) -> tuple[bool, str]:
        """Check whether this is a valid task: ``(ok, reason)``."""
        problems = self.problems()
        if problems:
            return False, "; ".join(problems)
        return True, "valid"

    def build(self):
        """Build the `Task` this config describes."""
        return self.task_type(self)


def check_channels(field: str, channels) -> list[str]:
    """Problems with a list of channel/class names: empty, duplicate or not strings."""
    if channels is None or len(channels) == 0:
        return [f"{field}: must not be empty"]
    problems = []
    if not all(isinstance(c, str) and c for c in channels):
        problems.append(f"{field}: every entry must be a non-empty string")
    dup = sorted({c for c in channels if list(channels).count(c) > 1})
    if dup:
        problems.append(f"{field}: duplicate names {dup}")
    return problems


def check_number_list(field: str, values, low: float, high: float = math.inf, *,
                      allow_empty: bool = False) -> list[str]:
    """Problems with a sweep of numbers: not a list (or an empty one unless ``allow_empty``),
    a value that is not a finite number in the open interval ``(low, high)`` (booleans are
    not numbers), or a duplicate."""
    if not isinstance(values, list | tuple) or not (values or allow_empty):
        kind = "list" if allow_empty else "non-empty list"
        return [f"{field}: must be a {kind} of numbers, got {values!r}"]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
               and low < v < high for v in values):
        return [f"{field}: every value must lie in ({low:g}, {high:g}), got {list(values)}"]
    if len(set(values)) != len(values):
        return [f"{field}: duplicate values in {list(values)}"]
    return []


def check_positive(field: str, value) -> list[str]:
    if not isinstance(value, (int, float)) or not value > 0:
        return [f"{field}: must be > 0, got {value!r}"]
    return []


def check_non_negative(field: str, value) -> list[str]:
    if not isinstance(value, (int, float)) or not value >= 0:
        return [f"{field}: must be >= 0, got {value!r}"]
    return []


def check_clip_bounds(min_field: str, lo, max_field: str, hi) -> list[str]:
    """Clip bounds for class balancing must satisfy 0 < lo < hi < 1."""
    problems = []
    for field, value in ((min_field, lo), (max_field, hi)):
        if not isinstance(value, (int, float)) or not 0 < value < 1:
            problems.append(f"{field}: must lie in (0, 1), got {value!r}")
    if not problems and lo >= hi:
        problems.append(f"{min_field} ({lo}) must be smaller than {max_field} ({hi})")
    return problems


def check_kernel_size(field: str, value) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, int) or value < 1 or value % 2 == 0:
        return [f"{field}: must be an odd integer >= 1 (or None), got {value!r}"]
    return []
