"""One model's cost curve beyond the standard suite: ``jaxrec bench``'s epoch and ranking cases
on the named data sets, in one process, small to large. One JSON object per line, appended to
``results/curve.jsonl``.

  python bench/curve.py lightgcn synthetic-1000000 synthetic-5000000 --repeats 1
  python bench/curve.py lightgcn synthetic-1000000 synthetic-20000000 --cases ranking

The standard suite times LightGCN up to 1M synthetic pairs only; an epoch there takes seconds, and
the full suite is meant to finish in minutes. ``--repeats``: timed epochs after the compiling one
(their median). ``peak_rss_mb`` is the process's peak so far, so it bounds the case just measured.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import emit, machine  # bench/ is the script's directory, on sys.path

from jaxrec.experiment import benchmarks
from jaxrec.experiment.studies.bench import BATCH, _split

OUT = Path(__file__).resolve().parent / "results" / "curve.jsonl"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", choices=sorted(benchmarks.MODELS))
    p.add_argument("datasets", nargs="+", help="ml-100k, gowalla or synthetic-<pairs>")
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--cases", nargs="+", choices=("epoch", "ranking"), default=["epoch"])
    args = p.parse_args()
    for name in args.datasets:
        split = _split(name)
        batch = BATCH.get(name, 8192)
        rows = []
        if "epoch" in args.cases:
            rows.append(benchmarks.epoch_case(name, split, args.model, batch, args.optimizer, args.repeats))
        if "ranking" in args.cases:
            rows.append(benchmarks.ranking_case(name, split, args.model, max(args.repeats, 1)))
        for row in rows:
            emit({"bench": "curve", **row, **machine()}, str(OUT))
        del split


if __name__ == "__main__":
    main()
