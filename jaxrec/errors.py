"""One exception type for user mistakes.

Everything a user can get wrong (a malformed file, an unknown config key, a bad value) raises
:class:`JaxrecError` with a message naming the file and line, or the key and value. The CLI prints
that message alone and exits with status 2; library users catch it like any ``ValueError``.
"""

from __future__ import annotations


class JaxrecError(ValueError):
    """A user-facing error: bad input data, bad configuration, an unknown name."""
