"""What every benchmark script records: the machine, the process's peak memory, one JSON line.

The measurements themselves are the library's (:mod:`jaxrec.experiment.benchmarks`, what
``jaxrec bench`` runs): ``peak_mb`` is its ``peak_rss_mb`` and ``first_and_median`` its ``timed``;
this module keeps no timing or memory code of its own.
"""

from __future__ import annotations

import json
import os
import platform
import warnings


def machine() -> dict:
    """CPU count, architecture and JAX backend."""
    import jax

    return {"cpus": os.cpu_count(), "machine": platform.machine(), "backend": jax.default_backend()}


def peak_mb() -> float:
    """The process's peak resident memory, MB: :func:`jaxrec.experiment.benchmarks.peak_rss_mb`."""
    from jaxrec.experiment.benchmarks import peak_rss_mb

    return peak_rss_mb()


def first_and_median(fn, repeats: int) -> tuple[float, float | None]:
    """:func:`jaxrec.experiment.benchmarks.timed`: ``(first call seconds, median of `repeats`
    more)``, the median ``None`` when ``repeats`` is 0 (only the first call is timed)."""
    from jaxrec.experiment.benchmarks import timed

    with warnings.catch_warnings():  # repeats = 0: the median of no calls is nan, not reported
        warnings.simplefilter("ignore", RuntimeWarning)
        first, median = timed(fn, repeats)
    return first, median if repeats else None


def emit(row: dict, out: str | None) -> None:
    """Print ``row`` as one JSON line and append it to ``out`` (when given)."""
    line = json.dumps(row)
    print(line, flush=True)
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")
