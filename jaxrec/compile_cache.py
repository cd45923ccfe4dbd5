"""JAX's persistent compilation cache for the command line: a second run of a command loads its
compiled programs from disk instead of compiling them again.

The CLI turns it on at start (:func:`enable`); the Python API leaves JAX's settings alone (call
:func:`enable` yourself). ``$JAXREC_COMPILE_CACHE`` chooses: unset, the directory
``$XDG_CACHE_HOME/jaxrec/xla`` (``~/.cache/jaxrec/xla``); a path, that directory; ``off`` (or
``0``), no cache. Programs that took :data:`MIN_COMPILE_S` or more to compile are cached (JAX's
default threshold of 1 s would skip most of jaxrec's, which are many and small; caching the
tiniest too costs more than it saves, since every write scans the directory to keep its bound).
The cache is bounded (:data:`MAX_BYTES`, least recently used entries evicted), and its reads and
writes take a file lock, so processes can share one directory.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_BYTES = 2 << 30  #: the cache's size bound (2 GiB)
MIN_COMPILE_S = 0.1  #: programs compiled faster than this are not cached
OFF = ("off", "0", "false", "no")


def cache_dir() -> Path | None:
    """The directory ``$JAXREC_COMPILE_CACHE`` asks for (None: off)."""
    value = os.environ.get("JAXREC_COMPILE_CACHE", "").strip()
    if value.lower() in OFF:
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxrec" / "xla"


def enable(directory: str | Path | None = None) -> Path | None:
    """Turn the persistent cache on in ``directory`` (default :func:`cache_dir`); returns it, or
    None when it is off or the directory cannot be created (then JAX compiles as usual)."""
    import jax

    directory = Path(directory) if directory is not None else cache_dir()
    try:
        import filelock  # noqa: F401 -- the lock that makes a shared directory safe
    except ImportError:
        return None
    if directory is None:
        return None
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_S)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)  # eviction on: reads/writes take a file lock
    return directory
