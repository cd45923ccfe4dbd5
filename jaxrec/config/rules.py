"""The values a config field allows, written next to the field: ``lr: float = ranged(1e-3, above(0))``.

:func:`jaxrec.config.validate` applies them (to YAML, ``--set`` and configs built in code).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any


@dataclasses.dataclass(frozen=True)
class Rule:
    """The values a config field allows: ``ok(value)``, and ``says`` in words."""

    says: str
    ok: typing.Callable[[Any], bool]


def at_least(lo) -> Rule:
    return Rule(f">= {lo}", lambda v: v >= lo)


def above(lo) -> Rule:
    return Rule(f"> {lo}", lambda v: v > lo)


def between(lo, hi, low_open: bool = False, high_open: bool = False) -> Rule:
    says = f"in {'(' if low_open else '['}{lo}, {hi}{')' if high_open else ']'}"
    return Rule(says, lambda v: (v > lo if low_open else v >= lo) and (v < hi if high_open else v <= hi))


def one_of(*options) -> Rule:
    return Rule(f"one of {list(options)}", lambda v: v in options)


NAME = Rule(
    "a single path component (not empty, no '/' or '\\', not '.' or '..')",
    lambda v: bool(v) and "/" not in v and "\\" not in v and v not in (".", ".."),
)


def ranged(default, rule: Rule):
    """A field with a default and its allowed values (tuples: every element; None always passes)."""
    return dataclasses.field(default=default, metadata={"rule": rule})


__all__ = ["NAME", "Rule", "above", "at_least", "between", "one_of", "ranged"]
