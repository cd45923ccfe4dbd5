"""YAML -> the typed, frozen sections of :mod:`jaxrec.config.schema`, checked.

Unknown keys, duplicate keys, values of the wrong type and values outside a field's range are
errors that name the key and the value (and the file, or the ``--set`` that gave it). A small
hand-written loader rather than a config library: it gives exactly these messages, and the
dataclasses stay plain (importable, picklable, hashable for ``jit``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Union

import yaml

from jaxrec.config.schema import _CROSS, RENAMED, Config
from jaxrec.errors import JaxrecError


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


_KINDS = {int: "an integer", float: "a number", str: "a string", bool: "true/false"}


def _coerce(value: Any, tp, where: str):
    """Check/convert one YAML value to the annotated type ``tp``; errors name ``where``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        for option in inner[:-1]:  # int | str: the first type the value is
            try:
                return _coerce(value, option, where)
            except JaxrecError:
                pass
        try:
            return _coerce(value, inner[-1], where)
        except JaxrecError:
            if len(inner) == 1:
                raise
            kinds = " or ".join(_KINDS.get(a, _type_name(a)) for a in inner)
            raise JaxrecError(f"{where}: expected {kinds}, got {value!r}") from None
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise JaxrecError(f"{where}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise JaxrecError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise JaxrecError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):  # YAML reads 1e-3 as a string
                try:
                    return float(value)
                except ValueError:
                    pass
            raise JaxrecError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise JaxrecError(f"{where}: expected a string, got {value!r}")
        return value
    raise JaxrecError(f"{where}: unsupported config type {_type_name(tp)}")


def from_dict(cls, values: dict, where: str = ""):
    """Build dataclass ``cls`` from a mapping; unknown keys and bad types raise ``JaxrecError``."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    prefix = f"{where}." if where else ""
    for key in values:
        if (cls, key) in RENAMED:
            raise JaxrecError(
                f"{prefix}{key} was renamed {prefix}{RENAMED[cls, key]}: give {RENAMED[cls, key]} instead"
            )
        if key not in names:
            raise JaxrecError(f"unknown config key {prefix}{key!s} (known: {', '.join(sorted(names))})")
    kwargs = {}
    for key, value in values.items():
        path = f"{where}.{key}" if where else str(key)
        kwargs[key] = _coerce(value, hints[key], path)
    return validate(cls(**kwargs), where, deep=False)


def validate(obj, where: str = "", deep: bool = True):
    """Check every field of a config dataclass against its rule (and the cross-field checks);
    ``deep``: the nested sections too (configs built in code). Returns ``obj``; a bad value
    raises :class:`JaxrecError` naming ``<where>.<field>``, the value and what is allowed."""
    at = f"{where}." if where else ""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            if deep:
                validate(value, f"{at}{f.name}")
            continue
        rule = f.metadata.get("rule")
        if rule is not None and value is not None:
            for v in value if isinstance(value, tuple) else (value,):
                if not rule.ok(v):
                    shown = list(value) if isinstance(value, tuple) else value
                    raise JaxrecError(f"{at}{f.name} must be {rule.says}, got {shown!r}")
    for check in _CROSS.get(type(obj), ()):
        check(obj, at)
    return obj


def to_dict(cfg) -> dict:
    """A plain, YAML-ready dict (tuples become lists)."""

    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(cfg))


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """Apply ``a.b=c`` overrides (value parsed as YAML) to a nested dict, returning a new dict."""
    values = yaml.safe_load(yaml.safe_dump(values)) or {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise JaxrecError(f"--set {item!r}: expected KEY=VALUE, e.g. train.epochs=50")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as e:
            raise JaxrecError(f"--set {item!r}: cannot parse the value: {e}") from None
        node = values
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise JaxrecError(f"--set {item!r}: {p} is not a section")
        node[parts[-1]] = value
    return values


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a mapping that repeats a key (YAML keeps the last silently)."""


def _unique_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise JaxrecError(f"line {key_node.start_mark.line + 1}: the key {key!r} appears twice")
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (or the defaults when ``path`` is None) and apply ``overrides``.

    A mistake in the file is reported with the file's name; a mistake an override brings is
    blamed on that ``--set``."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise JaxrecError(f"{path}: config file not found")
        try:
            values = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
        except yaml.YAMLError as e:
            raise JaxrecError(f"{path}: invalid YAML: {e}") from None
        except JaxrecError as e:
            raise JaxrecError(f"{path}: {e}") from None
        if not isinstance(values, dict):
            raise JaxrecError(f"{path}: the top level must be a mapping of sections")
        try:
            from_dict(Config, values)
        except JaxrecError as e:
            raise JaxrecError(f"{path}: {e}") from None
    cfg = from_dict(Config, values) if not overrides else None
    if overrides:  # all together first: a check across fields holds when the last --set arrives
        try:
            return from_dict(Config, apply_overrides(values, list(overrides)))
        except JaxrecError:
            pass
    for item in overrides:  # one at a time: the first bad one is named
        values = apply_overrides(values, [item])
        try:
            cfg = from_dict(Config, values)
        except JaxrecError as e:
            raise JaxrecError(f"--set {item}: {e}") from None
    return cfg


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
