"""One exception type for user mistakes.

Everything a user can get wrong (a malformed file, an unknown config key, a bad value) raises
:class:`JaxrecError` with a message naming the file and line, or the key and value. The CLI prints
that message alone and exits with status 2; library users catch it like any ``ValueError``.

A message that says what to do next words it for the caller (:data:`CALLER`, :func:`option`):
``overwrite=True`` to a Python caller, ``--overwrite`` on the command line.
"""

from __future__ import annotations

import contextlib


class JaxrecError(ValueError):
    """A user-facing error: bad input data, bad configuration, an unknown name."""


@contextlib.contextmanager
def config_section(section: str):
    """Name the config section of a lower layer's error that starts with the argument it is
    about (``sizes: ...`` from ``scenario(sizes=...)`` becomes ``attack.sizes: ...``)."""
    try:
        yield
    except JaxrecError as e:
        raise type(e)(f"{section}.{e}") from None


@contextlib.contextmanager
def config_key(key: str):
    """Name the config ``key`` in any :class:`JaxrecError` raised inside: the experiment layer
    wraps its calls of lower layers (whose messages name values, not YAML keys) with it."""
    try:
        yield
    except JaxrecError as e:
        raise type(e)(f"{key}: {e}") from None


#: who is asking: ``"python"`` (the library, the default) or ``"cli"`` (``jaxrec``'s command line,
#: while it runs a command: :func:`caller`); hints name the caller's own way to ask (:func:`option`)
CALLER = "python"


@contextlib.contextmanager
def caller(name: str):
    """:data:`CALLER` is ``name`` inside (the CLI runs its commands in ``caller("cli")``)."""
    global CALLER
    previous, CALLER = CALLER, name
    try:
        yield
    finally:
        CALLER = previous


def option(name: str) -> str:
    """How the caller turns on the switch ``name`` (``overwrite``, ``resume``): a keyword argument
    from Python (``overwrite=True``), a flag on the command line (``--overwrite``)."""
    return f"--{name.replace('_', '-')}" if CALLER == "cli" else f"{name}=True"


def setting(key: str, value: str = "...") -> str:
    """How the caller gives the config key ``key`` a value: ``--set name=...`` on the command
    line; from Python, in the config (``dataclasses.replace(cfg, name=...)``)."""
    if CALLER == "cli":
        return f"--set {key}={value}"
    *sections, field = key.split(".")
    inner = f"{field}={value}"
    for i in range(len(sections), 0, -1):  # train.epochs: replace(cfg, train=replace(cfg.train, epochs=...))
        inner = f"{sections[i - 1]}=dataclasses.replace(cfg.{'.'.join(sections[:i])}, {inner})"
    return f"dataclasses.replace(cfg, {inner})"
