"""YAML -> the typed, frozen sections of :mod:`jaxrec.config.schema`, checked; a config is a file
or the name of one that ships with jaxrec (:func:`resolve_config`).

Unknown keys, duplicate keys, values of the wrong type and values outside a field's range are
errors that name the key and the value (and the file, or the ``--set`` that gave it). A small
hand-written loader rather than a config library: it gives exactly these messages, and the
dataclasses stay plain (importable, picklable, hashable for ``jit``).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import typing
from pathlib import Path

import yaml

from jaxrec.config.rules import check
from jaxrec.config.schema import RENAMED, Config
from jaxrec.errors import JaxrecError


def from_dict(cls, values: dict, where: str = ""):
    """Build dataclass ``cls`` from a mapping (its sections from nested mappings); unknown keys,
    bad types and values out of range raise ``JaxrecError`` naming the key."""
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
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            path = f"{prefix}{key}"
            if not isinstance(value, dict):
                raise JaxrecError(f"{path}: expected a mapping of {tp.__name__} fields, got {value!r}")
            value = from_dict(tp, value, path)
        kwargs[key] = value
    return cls(**kwargs)  # every section checks its values as it is built (rules.Checked)


def validate(obj, where: str | None = None, deep: bool = True):
    """Check every field of a config dataclass against its rule (and the cross-field checks)
    again; ``deep``: the nested sections too. Returns ``obj``; a bad value raises
    :class:`JaxrecError` naming ``<where>.<field>`` (default: the section's key), the value and
    what is allowed. Sections check themselves when built; this re-check costs little."""
    check(obj, where)
    if deep:
        at = f"{where}." if where else ""
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                validate(value, f"{at}{f.name}")
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


def shipped_configs() -> dict[str, Path]:
    """The configs that ship with jaxrec (``jaxrec/configs/*.yaml``, the repository's ``configs/``):
    ``{name: path}``, the name without ``.yaml`` (``ml100k-mf``)."""
    root = importlib.resources.files("jaxrec") / "configs"
    return {p.name[: -len(".yaml")]: Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}


def resolve_config(name_or_path: str | Path, base_dir: str | Path | None = None) -> Path:
    """The config file ``name_or_path`` names: the file itself (relative to ``base_dir`` when one
    is given: a reference inside a config, ``attack.victims``, resolves next to that config)
    when it exists -- an existing file always wins -- else the shipped config of that name
    (``ml100k-mf`` or ``ml100k-mf.yaml``, :func:`shipped_configs`). Neither is one
    :class:`JaxrecError` listing the shipped names."""
    path = Path(name_or_path)
    here = path if base_dir is None else Path(base_dir) / path
    if here.is_file():
        return here
    if len(path.parts) == 1 and path.suffix in ("", ".yaml"):  # a bare name: the shipped config
        name = path.name[: -len(".yaml")] if path.suffix else path.name
        shipped = shipped_configs()
        if name in shipped:
            return shipped[name]
        names = ", ".join(sorted(shipped))
        raise JaxrecError(f"{here}: config file not found, and jaxrec ships no config {name!r} (shipped: {names})")
    raise JaxrecError(f"{here}: config file not found")


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (or the defaults when ``path`` is None) and apply ``overrides``.

    ``path`` is a file or the name of a shipped config (``"ml100k-mf"``, :func:`resolve_config`;
    an existing file wins). A mistake in the file is reported with the file's name; a mistake an
    override brings is blamed on that ``--set``."""
    values: dict = {}
    if path is not None:
        path = resolve_config(path)
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
