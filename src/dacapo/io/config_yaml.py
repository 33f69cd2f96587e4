"""Configs <-> plain dicts / YAML with cattrs; a ``type`` tag names the config class.

Every attrs config class registers itself here by class name (task and architecture
configs through their base class, the others with `register` below their definition);
dicts carry ``type: ClassName``.
Unknown types, missing and extra fields raise `ConfigError` naming the field; so does a
value of an integer field that is not an integer (`structure_int`: 40.5, "forty", true), a
nested config given something else than a mapping (``normalization: percentile``) and a list
field given something else than a list (``annotated: cytoplasm``, which cattrs would read
as the list of its letters): `expect_mapping`, `expect_list`.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import attr
import cattrs
import yaml
from cattrs import cols
from funlib.geometry import Coordinate

from dacapo.errors import ConfigError

TYPE_KEY = "type"
_registry: dict[str, type] = {}
_bases: list[type] = []


def register(cls: type, base: type | None = None) -> type:
    """Make ``cls`` known by its class name; ``base`` (optional) becomes polymorphic."""
    _registry[cls.__name__] = cls
    if base is not None and base not in _bases:
        _bases.append(base)
        _converter.register_structure_hook_func(lambda t, b=base: t is b, _structure_tagged)
        _converter.register_unstructure_hook_func(lambda t, b=base: t is b, _unstructure_tagged)
    return cls


def given(value: Any) -> str:
    """How a message shows a YAML value of the wrong kind: ``the string 'x'``, ``a list``."""
    if isinstance(value, str):
        return f"the string {value!r}"
    if value is None:
        return "null (nothing)"
    if isinstance(value, (bool, int, float)):
        return f"the {type(value).__name__} {value!r}"
    return {dict: "a mapping", list: "a list", tuple: "a list"}.get(type(value),
                                                                   type(value).__name__)


def expect_mapping(data: Any, cls: type) -> None:
    """ConfigError unless ``data`` (the value of a ``cls`` config) is a mapping."""
    if not isinstance(data, dict):
        names = ", ".join(f.name for f in attr.fields(cls)) if attr.has(cls) else ""
        raise ConfigError(f"expected a mapping ({cls.__name__}: fields {names}), got "
                          f"{given(data)}")


def expect_list(data: Any) -> None:
    """ConfigError unless ``data`` (the value of a list field) is a list."""
    if not isinstance(data, (list, tuple)):
        raise ConfigError(f"expected a list, got {given(data)}")


def _structure_tagged(data: Any, cl: type) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping (a {cl.__name__}: `{TYPE_KEY}: ClassName` and "
                          f"its fields), got {given(data)}")
    if TYPE_KEY not in data:
        raise ConfigError(f"missing field '{TYPE_KEY}' (the config class) for a {cl.__name__}")
    name = data[TYPE_KEY]
    cls = _registry.get(name)
    if cls is None or not issubclass(cls, cl):
        known = sorted(k for k, v in _registry.items() if issubclass(v, cl))
        raise ConfigError(f"unknown {cl.__name__} type {name!r}; known: {known}")
    fields = {k: v for k, v in data.items() if k != TYPE_KEY}
    return _structure_plain(fields, cls)


def _unstructure_tagged(obj: Any) -> dict:
    return {TYPE_KEY: type(obj).__name__, **_unstructure_plain(obj)}


def _structure_plain(data: dict, cls: type) -> Any:
    attr.resolve_types(cls)
    return _converter.structure(data, cls)


def _unstructure_plain(obj: Any) -> dict:
    attr.resolve_types(type(obj))
    return {
        f.name: _converter.unstructure(getattr(obj, f.name), unstructure_as=f.type)
        for f in attr.fields(type(obj))
    }


def structure_int(value: Any, _type: type = int) -> int:
    """The value of an ``int`` field: an integer, or a number or text of an integral value
    (40.0, "40"); ConfigError with the value otherwise (cattrs would turn 40.5 into 40)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"expected an integer, got {value!r}")


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(int, structure_int)
    # bool fields as before (cattrs would find the int hook for bool, a subclass of int)
    conv.register_structure_hook(bool, lambda v, _: bool(v))
    conv.register_structure_hook(Coordinate, lambda d, _: Coordinate(d))
    conv.register_unstructure_hook(Coordinate, lambda c: [int(v) for v in c])
    conv.register_structure_hook(Path, lambda d, _: Path(d))
    conv.register_unstructure_hook(Path, str)

    def attrs_hook(cls: type):
        structure = conv.gen_structure_attrs_fromdict(cls)

        def hook(data: Any, cl: type) -> Any:
            expect_mapping(data, cls)
            return structure(data, cl)

        return hook

    def list_hook(type_: type):
        structure = cols.list_structure_factory(type_, conv)

        def hook(data: Any, cl: type) -> Any:
            expect_list(data)
            return structure(data, cl)

        return hook

    conv.register_structure_hook_factory(attr.has, attrs_hook)
    conv.register_structure_hook_factory(cols.is_mutable_sequence, list_hook)
    return conv


_converter = _make_converter()


def to_dict(obj: Any) -> dict:
    """A registered config as a plain dict with a ``type`` tag (recursively)."""
    return _unstructure_tagged(obj)


def from_dict(data: dict, cls: type | None = None) -> Any:
    """The config described by ``data``; ``cls`` (a base or concrete class) optional."""
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping (a config: `{TYPE_KEY}: ClassName` and its "
                          f"fields), got {given(data)}")
    if TYPE_KEY in data or cls is None:
        target = cls or object
        if TYPE_KEY not in data:
            raise ConfigError(f"missing field '{TYPE_KEY}' (the config class)")
        name = data[TYPE_KEY]
        if name not in _registry or not issubclass(_registry[name], target):
            raise ConfigError(f"unknown config type {name!r}; known: {sorted(_registry)}")
        cls = _registry[name]
        data = {k: v for k, v in data.items() if k != TYPE_KEY}
    try:
        return _structure_plain(data, cls)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - cattrs errors are reworded with field paths
        raise ConfigError(_describe(e, cls)) from e


def _format(exc: BaseException, type_) -> str:
    if isinstance(exc, ConfigError):
        return str(exc)
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return unknown_fields_message(exc.cl, exc.extra_fields)
    return cattrs.v.format_exception(exc, type_)


def unknown_fields_message(cls: type, names) -> str:
    """``unknown field 'x' of Cls; valid fields: a, b`` (``dacapo config-help`` lists them)."""
    names = sorted(names)
    valid = [f.name for f in attr.fields(cls)] if attr.has(cls) else []
    noun = "field" if len(names) == 1 else "fields"
    close = [m for n in names for m in difflib.get_close_matches(n, valid, n=1, cutoff=0.6)]
    hint = f" (did you mean {', '.join(repr(m) for m in close)}?)" if close else ""
    return (f"unknown {noun} {', '.join(repr(n) for n in names)} of {cls.__name__}{hint}; valid "
            f"fields: {', '.join(valid)} (see `dacapo config-help {cls.__name__}`)")


def _describe(error: Exception, cls: type) -> str:
    if isinstance(error, (cattrs.BaseValidationError,)):
        messages = cattrs.transform_error(error, path=cls.__name__, format_exception=_format)
        return "; ".join(messages)
    return f"{cls.__name__}: {error}"


def to_yaml(obj: Any, path: str | Path | None = None) -> str:
    """YAML text of a config; also written to ``path`` (atomically) when given."""
    text = yaml.safe_dump(to_dict(obj), sort_keys=False)
    if path is not None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return text


def from_yaml(source: str | Path, cls: type | None = None) -> Any:
    """The config in a YAML file (or YAML text when ``source`` is not a file)."""
    path = Path(source) if isinstance(source, Path) or "\n" not in str(source) else None
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        text = path.read_text()
    else:
        text = str(source)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path or 'config'}: not valid YAML: {e}") from e
    return from_dict(data, cls)
