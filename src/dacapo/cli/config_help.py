"""The configuration reference, generated from the attrs configs' ``help_text``.

`reference_text(kind)` is what ``dacapo config-help [KIND]`` prints; `reference_markdown()`
is ``docs/configuration.md`` (a test regenerates it and compares it to the committed
file, so the reference cannot drift from the code). KIND is one of `KINDS` or a config
class name (case-insensitive): every registered config class has a kind (the loader's
unknown-field errors tell users to run ``dacapo config-help CLASS``).
"""

from __future__ import annotations

import textwrap

import attr

from dacapo.experiments import architectures, tasks
from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig
from dacapo.experiments.normalization import NormalizationConfig
from dacapo.experiments.run_config import RunConfig
from dacapo.experiments.trainer_config import AugmentConfig, TrainerConfig
from dacapo.io.config_yaml import _registry

#: kind -> what it is, in the order the reference shows them
KIND_TITLES = {
    "run": "Run (the YAML file `dacapo verify` / `dacapo train` read)",
    "task": "Tasks (`task_config`)",
    "architecture": "Architectures (`architecture_config`)",
    "trainer": "Trainer (`trainer_config`)",
    "augmentation": "Augmentation (`trainer_config.augment`)",
    "datasplit": "Data (`datasplit_config`)",
}
KINDS = list(KIND_TITLES)


def config_classes() -> dict[str, list[type]]:
    """kind -> config classes (every registered task and architecture config; the parts
    of a run file that take no ``type:`` with the run)."""

    def registered(base: type) -> list[type]:
        return [c for c in _registry.values() if issubclass(c, base) and c is not base]

    return {
        "run": [RunConfig, NormalizationConfig],
        "task": registered(tasks.TaskConfig),
        "architecture": registered(architectures.ArchitectureConfig),
        "trainer": [TrainerConfig],
        "augmentation": [AugmentConfig],
        "datasplit": [DataSplitConfig, DatasetConfig],
    }


def _annotation(cls: type, name: str) -> str:
    for klass in cls.__mro__:
        ann = getattr(klass, "__annotations__", {}).get(name)
        if ann is not None:
            return ann if isinstance(ann, str) else getattr(ann, "__name__", repr(ann))
    return ""


def _default(field: attr.Attribute) -> str:
    default = field.default
    if default is attr.NOTHING:
        return "required"
    if isinstance(default, attr.Factory):
        if default.takes_self:
            return "(computed)"
        default = default.factory()
        if attr.has(type(default)):
            return f"{type(default).__name__}()"
    if isinstance(default, tuple):
        default = list(default)
    return repr(default)


def _doc(cls: type) -> str:
    doc = (cls.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(line.strip() for line in doc.splitlines())


def fields(cls: type) -> list[tuple[str, str, str, str]]:
    """``(name, type, default, help)`` of each field of a config class."""
    return [(f.name, _annotation(cls, f.name), _default(f), f.metadata.get("help_text", ""))
            for f in attr.fields(cls)]


def find(kind: str | None) -> list[tuple[str, list[type]]]:
    """``[(kind, classes)]`` for a kind, a class name, or everything (None)."""
    classes = config_classes()
    if kind is None:
        return list(classes.items())
    key = kind.lower()
    if key not in classes and key.endswith("s") and key[:-1] in classes:  # "tasks"
        key = key[:-1]
    if key in classes:
        return [(key, classes[key])]
    for k, group in classes.items():
        for cls in group:
            if cls.__name__.lower() in (kind.lower(), kind.lower() + "config"):
                return [(k, [cls])]
    names = [c.__name__ for group in classes.values() for c in group]
    raise ValueError(f"config-help: unknown kind {kind!r}; kinds: {', '.join(KINDS)}; "
                     f"classes: {', '.join(names)}")


def reference_text(kind: str | None = None, width: int = 100) -> str:
    """The reference for the terminal."""
    out = []
    for k, group in find(kind):
        for cls in group:
            out.append(f"{cls.__name__}  [{k}]  {_doc(cls)}")
            rows = fields(cls)
            w = max(len(r[0]) for r in rows) + 2
            for name, type_, default, help_ in rows:
                value = "(required)" if default == "required" else f"= {default}"
                out.append(f"  {name:<{w}}{type_} {value}")
                out += textwrap.wrap(help_, width, initial_indent=" " * 6, subsequent_indent=" " * 6)
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def reference_markdown() -> str:
    """``docs/configuration.md``."""
    out = ["# Configuration reference", "",
           "Every field of every config, generated from the code's `help_text` by",
           "`dacapo config-help --markdown > docs/configuration.md` (a test checks that this "
           "file is up to date).",
           "In YAML, a field that accepts several config classes (`task_config`, "
           "`architecture_config`, `sub_task_config`) names the class with `type:`, e.g. "
           "`type: DistanceTaskConfig`; a run file starts with `type: RunConfig`.",
           "`dacapo config-help KIND` prints one kind (" + ", ".join(KINDS) + ") or one class.",
           ""]
    for kind, group in find(None):
        out += [f"## {KIND_TITLES[kind]}", ""]
        for cls in group:
            out += [f"### {cls.__name__}", "", _doc(cls), "",
                    "| field | type | default | description |", "|---|---|---|---|"]
            for name, type_, default, help_ in fields(cls):
                value = default if default == "required" else f"`{_cell(default)}`"
                out.append(f"| `{name}` | `{_cell(type_)}` | {value} | {_cell(help_)} |")
            out.append("")
    return "\n".join(out).rstrip() + "\n"
