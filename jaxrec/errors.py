"""One exception type for user mistakes.

Everything a user can get wrong (a malformed file, an unknown config key, a bad value) raises
:class:`JaxrecError` with a message naming the file and line, or the key and value. The CLI prints
that message alone and exits with status 2; library users catch it like any ``ValueError``.
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
