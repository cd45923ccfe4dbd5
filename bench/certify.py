"""Sub-models per second for a certified ensemble: as members of one program vs one at a time.

The same sub-models either way: PORE's ml-100k setting (200-user subsamples), the
``configs/ml100k-certify.yaml`` MF base (15 epochs). ``members``: one ``train_members`` call for
the whole chunk. ``sequential``: one call per sub-model, in the same padded shape, so every call
runs the one compiled program. Both are warmed up first, so compilation is not timed. The
item-based base is timed the same way: a chunk in one ``item_votes`` call vs one call per base.

    python bench/certify.py [--members 32] [--repeats 3] [--loop auto] [--out bench/results/certify.jsonl]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import emit, machine, peak_mb  # noqa: E402

from jaxrec.config import load_config  # noqa: E402
from jaxrec.experiment.data import load_split  # noqa: E402
from jaxrec.experiment.training import train_members  # noqa: E402
from jaxrec.robustness import bagging  # noqa: E402


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: compiles
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--loop", default="auto", help="parallel.member_loop of the members: auto | vmap | map")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    cfg = load_config("configs/ml100k-certify.yaml", [f"parallel.member_loop={args.loop}"])
    split = load_split(cfg.data)
    m, s = args.members, cfg.certify.subsample
    subsets = bagging.draw_subsets(split.n_users, s, m, seed=0)
    counts = np.bincount(split.train.users, minlength=split.n_users)
    capacity = int(counts[subsets].sum(axis=1).max())
    trains = [split.train.select(np.isin(split.train.users, u)) for u in subsets]
    cfgs = [dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=t, eval_every=0)) for t in range(m)]

    def fit(cs, ts):
        run = train_members(cs, split, progress=False, trains=ts, capacity=capacity, test=False)
        jax.block_until_ready(run.fit.best)

    base = {"bench": "certify", "data": "ml-100k", "subsample": s, "members": m, **machine()}

    def report(members: float, sequential: float, **what) -> None:
        rates = {"members_per_s": m / members, "sequential_per_s": m / sequential, "speedup": sequential / members}
        row = {**base, **what, "members_s": members, "sequential_s": sequential, **rates, "peak_mb": peak_mb()}
        emit(row, args.out)

    members = median_seconds(lambda: fit(cfgs, trains), args.repeats)
    sequential = median_seconds(lambda: [fit([c], [t]) for c, t in zip(cfgs, trains)], args.repeats)
    report(members, sequential, base=cfg.model.name, epochs=cfg.train.epochs, member_loop=args.loop)
    seen = jnp.asarray(bagging.pairs_mask(split))
    matrix = jnp.zeros(seen.shape, jnp.float32).at[split.train.users, split.train.items].set(1)
    chunk = jnp.asarray(subsets)

    def item(rows):
        votes = jnp.zeros(seen.shape, jnp.int32)
        for r in rows:
            votes = bagging.item_votes(votes, matrix, seen, r, cfg.certify.votes)
        jax.block_until_ready(votes)

    members = median_seconds(lambda: item([chunk]), args.repeats)
    sequential = median_seconds(lambda: item([chunk[i : i + 1] for i in range(m)]), args.repeats)
    report(members, sequential, base="item")


if __name__ == "__main__":
    main()
