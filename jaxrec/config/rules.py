"""The values a config field allows, written next to the field: ``lr: float = ranged(1e-3, above(0))``,
and the one check that applies them.

Every section of :mod:`jaxrec.config.schema` is a :class:`Checked` dataclass: when it is built --
from YAML, a ``--set``, in Python, by ``dataclasses.replace`` -- :func:`check` converts each value
to its annotated type (an int where a float is asked becomes a float, a list a tuple) and applies
the field's rule, then the checks across fields. A bad value is one :class:`JaxrecError` naming
``<section>.<field>`` and the value.
"""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from typing import Any, Union

from jaxrec.errors import JaxrecError


@dataclasses.dataclass(frozen=True)
class Rule:
    """The values a config field allows: ``ok(value)``, and ``says`` in words (``text``, or a
    function of no arguments for a rule read when it is applied, :func:`key_of`)."""

    text: str | typing.Callable[[], str]
    ok: typing.Callable[[Any], bool]

    @property
    def says(self) -> str:
        return self.text() if callable(self.text) else self.text


def at_least(lo) -> Rule:
    return Rule(f">= {lo}", lambda v: v >= lo)


def above(lo) -> Rule:
    return Rule(f"> {lo}", lambda v: v > lo)


def between(lo, hi, low_open: bool = False, high_open: bool = False) -> Rule:
    says = f"in {'(' if low_open else '['}{lo}, {hi}{')' if high_open else ']'}"
    return Rule(says, lambda v: (v > lo if low_open else v >= lo) and (v < hi if high_open else v <= hi))


def one_of(*options) -> Rule:
    return Rule(f"one of {list(options)}", lambda v: v in options)


def key_of(registry: typing.Mapping) -> Rule:
    """A key of ``registry``, read when a value is checked: a registry that grows after import
    (:func:`jaxrec.models.register_model`) allows its new keys, and a refusal lists every key."""
    return Rule(lambda: f"one of {list(registry)}", lambda v: v in registry)


NAME = Rule(
    "a single path component (not empty, no '/' or '\\', not '.' or '..')",
    lambda v: bool(v) and "/" not in v and "\\" not in v and v not in (".", ".."),
)


def ranged(default, rule: Rule):
    """A field with a default and its allowed values (tuples: every element; None always passes)."""
    return dataclasses.field(default=default, metadata={"rule": rule})


#: section class -> its key in :class:`~jaxrec.config.schema.Config` (``TrainConfig`` -> ``train``):
#: a section built anywhere names its fields ``train.lr`` (``schema`` fills it)
SECTIONS: dict[type, str] = {}
#: section class -> its checks across fields, each ``check(section, "train.")`` (``schema`` fills it)
CROSS: dict[type, tuple] = {}

_KINDS = {int: "an integer", float: "a number", str: "a string", bool: "true/false"}


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(value: Any, tp, where: str):
    """``value`` as the annotated type ``tp`` (YAML's and Python's values alike: an int for a float
    becomes a float, a list a tuple, numpy scalars Python numbers); a value of another kind raises
    :class:`JaxrecError` naming ``where``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        for option in inner[:-1]:  # int | str: the first type the value is
            try:
                return coerce(value, option, where)
            except JaxrecError:
                pass
        try:
            return coerce(value, inner[-1], where)
        except JaxrecError:
            if len(inner) == 1:
                raise
            kinds = " or ".join(_KINDS.get(a, _type_name(a)) for a in inner)
            raise JaxrecError(f"{where}: expected {kinds}, got {value!r}") from None
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, tp):
            raise JaxrecError(f"{where}: expected a {tp.__name__}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise JaxrecError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise JaxrecError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
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


def _fine(tp, rule: Rule | None) -> typing.Callable[[Any], bool]:
    """A quick test that a value is ``tp`` already and within ``rule``: True lets it pass untouched;
    False sends it to the full check (conversion, the message). Keeps ``dataclasses.replace``
    cheap: sweeps build many configs."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    ok = rule.ok if rule is not None else (lambda v: True)
    if tp in (int, float, str, bool) or dataclasses.is_dataclass(tp):
        return lambda v: type(v) is tp and ok(v)
    if origin in (Union, types.UnionType) and len(args) == 2 and type(None) in args:
        inner = _fine(next(a for a in args if a is not type(None)), rule)
        return lambda v: v is None or inner(v)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis and args[0] in (int, float, str, bool):
        item = args[0]
        return lambda v: type(v) is tuple and all(type(x) is item and ok(x) for x in v)
    return lambda v: False


_FIELDS: dict[type, list] = {}


def _fields(cls) -> list:
    """``[(name, type, rule, quick test)]`` of a section class, worked out once."""
    out = _FIELDS.get(cls)
    if out is None:
        hints = typing.get_type_hints(cls)
        out = _FIELDS[cls] = []
        for f in dataclasses.fields(cls):
            rule = f.metadata.get("rule")
            out.append((f.name, hints[f.name], rule, _fine(hints[f.name], rule)))
    return out


def check(obj, where: str | None = None):
    """Convert and check every field of the section ``obj`` in place (its type, then its rule),
    then the checks across its fields; returns ``obj``. ``where``: the section's key (default: its
    key in ``Config``, :data:`SECTIONS`). A bad value raises :class:`JaxrecError` naming
    ``<where>.<field>``, the value and what is allowed."""
    if where is None:
        where = SECTIONS.get(type(obj), "")
    at = f"{where}." if where else ""
    values = obj.__dict__
    for name, tp, rule, fine in _fields(type(obj)):
        value = values[name]
        if fine(value):
            continue
        converted = coerce(value, tp, at + name)
        if converted is not value:
            object.__setattr__(obj, name, converted)  # frozen: the one write, while it is built
            value = converted
        if rule is not None and value is not None:
            for v in value if isinstance(value, tuple) else (value,):
                if not rule.ok(v):
                    shown = list(value) if isinstance(value, tuple) else value
                    raise JaxrecError(f"{at}{name} must be {rule.says}, got {shown!r}")
    for cross in CROSS.get(type(obj), ()):
        cross(obj, at)
    return obj


class Checked:
    """The base of every config section: :func:`check` runs when the section is built
    (``TrainConfig(epochs=-1)`` raises ``train.epochs must be >= 0, got -1``), by
    ``dataclasses.replace`` too."""

    __slots__ = ()

    def __post_init__(self) -> None:
        check(self)


__all__ = [
    "CROSS",
    "NAME",
    "SECTIONS",
    "Checked",
    "Rule",
    "above",
    "at_least",
    "between",
    "check",
    "coerce",
    "key_of",
    "one_of",
    "ranged",
]
