"""A planned run config as YAML with every choice written as a comment beside its value
(`dacapo.planning.planner`), and the plan file written once."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import yaml

from dacapo.io.config_yaml import to_dict


def render_yaml(rc, notes: dict[str, str], header: list[str],
                omit: Collection[str] = ()) -> str:
    """The run config as YAML with ``notes`` (keyed ``section.field``) as comments above
    their key; lists of numbers inline; the fields ``omit`` (``section.field``) left out
    (loading the YAML gives them their defaults)."""

    data = to_dict(rc)
    lines = [f"# {h}" for h in header]

    def scalar(v) -> str:
        return yaml.safe_dump(v, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()

    def emit(d: dict, prefix: str, indent: int) -> None:
        pad = " " * indent
        for key, value in d.items():
            path = f"{prefix}{key}"
            if path in omit:
                continue
            note = notes.get(path)
            if note:
                lines.append(f"{pad}# {note}")
            if isinstance(value, dict):
                lines.append(f"{pad}{key}:")
                emit(value, path + ".", indent + 2)
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                lines.append(f"{pad}{key}:")
                for item in value:
                    lines.append(f"{pad}  - {scalar(item)}")
            else:
                lines.append(f"{pad}{key}: {scalar(value)}")

    emit(data, "", 0)
    return "\n".join(lines) + "\n"


def write_plan(path: str | Path, text: str) -> Path:
    path = Path(path)
    if path.exists():
        raise ValueError(f"output {str(path)!r} exists already; choose another path")
    path.write_text(text)
    return path
