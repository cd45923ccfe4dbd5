"""What every benchmark script records: the machine, the process's peak memory, one JSON line."""

from __future__ import annotations

import json
import os
import platform
import resource


def machine() -> dict:
    """CPU count, architecture and JAX backend."""
    import jax

    return {"cpus": os.cpu_count(), "machine": platform.machine(), "backend": jax.default_backend()}


def peak_mb() -> float:
    """The process's peak resident memory, MB (Linux ``ru_maxrss`` is in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(row: dict, out: str | None) -> None:
    """Print ``row`` as one JSON line and append it to ``out`` (when given)."""
    line = json.dumps(row)
    print(line, flush=True)
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")
