"""Sub-models per second for a certified ensemble: as members of one program vs one at a time.

The same sub-models either way, trained and voting: by default PORE's ml-100k setting (200-user
subsamples), the ``configs/ml100k-certify.yaml`` MF base (15 epochs); ``--config`` another (a
sequence model's sub-models vote from their users' history windows). ``members``: one
``train_members`` call for the whole chunk, then its votes. ``sequential``: one call per
sub-model, in the same padded shape, so every call runs the one compiled program. The votes of
both are compared (``same_votes``); both run once before the clock (``timed``'s first call), so
compilation is not timed. The non-learned base (item-based; for sequence data the Markov
chain) is timed the same way: a chunk in one call vs one call per base.

    python bench/certify.py [--config C] [--set KEY=VALUE] [--members 32] [--repeats 3] [--loop auto]
        [--out bench/results/certify.jsonl]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import emit, machine, peak_mb  # noqa: E402

from jaxrec.config import load_config  # noqa: E402
from jaxrec.experiment import certified  # noqa: E402
from jaxrec.experiment.benchmarks import timed  # noqa: E402
from jaxrec.experiment.data import load_split  # noqa: E402
from jaxrec.experiment.training import train_members  # noqa: E402
from jaxrec.models import MODELS  # noqa: E402
from jaxrec.models.sequential import is_sequential  # noqa: E402
from jaxrec.robustness import bagging  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/ml100k-certify.yaml")
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE overrides of the config")
    ap.add_argument("--members", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--loop", default="auto", help="parallel.member_loop of the members: auto | vmap | map")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    m = args.members
    overrides = [f"parallel.member_loop={args.loop}", f"certify.sub_models={m}", f"certify.chunk={m}", *args.set]
    cfg = load_config(args.config, overrides)
    sequential_model = is_sequential(MODELS[cfg.model.name])
    split = load_split(cfg.data, sequential=sequential_model)
    s = cfg.certify.subsample
    # one chunk of m subsamples, in the shape the study gives every chunk (a sequence model: its
    # bucket shape over the subsamples; queries: its users' test-time history windows)
    (_, subsets, _), *_ = list(certified._chunks(cfg, split.n_users))
    capacity, queries = certified._capacity(cfg, split, split.train)
    trains = [split.train.select(np.isin(split.train.users, u)) for u in subsets]
    cfgs = [dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=t, eval_every=0)) for t in range(m)]
    seen = jnp.asarray(bagging.pairs_mask(split))
    chunk = jnp.asarray(subsets)

    def fit(cs, ts, rows):
        run = train_members(cs, split, progress=False, trains=ts, capacity=capacity, test=False)
        tr = run.training
        votes = jnp.zeros(seen.shape, jnp.int32)
        votes = bagging.model_votes(
            votes, tr.model, run.fit.best, tr.inputs, seen, rows, cfg.certify.votes, tr.data_batched, queries
        )
        return jax.block_until_ready(votes)

    def loop():
        return sum(fit([c], [t], chunk[i : i + 1]) for i, (c, t) in enumerate(zip(cfgs, trains)))

    base = {"bench": "certify", "data": cfg.data.dataset, "subsample": s, "members": m, **machine()}

    def report(members: float, sequential: float, **what) -> None:
        rates = {"members_per_s": m / members, "sequential_per_s": m / sequential, "speedup": sequential / members}
        row = {**base, **what, "members_s": members, "sequential_s": sequential, **rates, "peak_mb": peak_mb()}
        emit(row, args.out)

    same = bool(np.array_equal(np.asarray(fit(cfgs, trains, chunk)), np.asarray(loop())))  # warms both up too
    members = timed(lambda: fit(cfgs, trains, chunk), args.repeats)[1]  # its first call: compiled above
    sequential = timed(loop, args.repeats)[1]
    report(members, sequential, base=cfg.model.name, epochs=cfg.train.epochs, member_loop=args.loop, same_votes=same)
    if sequential_model:  # the Markov-chain base: a chunk in one call vs one call per base
        src, dst, ctx = certified._chain(cfg, split, split.train)

        def chain(rows):
            votes = jnp.zeros(seen.shape, jnp.int32)
            for r in rows:
                votes = bagging.transition_votes(
                    votes, src, dst, ctx, seen, r, cfg.certify.votes, decay=cfg.certify.decay
                )
            return jax.block_until_ready(votes)

        one, per = chain([chunk]), chain([chunk[i : i + 1] for i in range(m)])
        members = timed(lambda: chain([chunk]), args.repeats)[1]
        sequential = timed(lambda: chain([chunk[i : i + 1] for i in range(m)]), args.repeats)[1]
        report(
            members, sequential, base="transition", same_votes=bool(np.array_equal(np.asarray(one), np.asarray(per)))
        )
        return
    matrix = jnp.zeros(seen.shape, jnp.float32).at[split.train.users, split.train.items].set(1)

    def item(rows):
        votes = jnp.zeros(seen.shape, jnp.int32)
        for r in rows:
            votes = bagging.item_votes(votes, matrix, seen, r, cfg.certify.votes)
        jax.block_until_ready(votes)

    members = timed(lambda: item([chunk]), args.repeats)[1]
    sequential = timed(lambda: item([chunk[i : i + 1] for i in range(m)]), args.repeats)[1]
    report(members, sequential, base="item")


if __name__ == "__main__":
    main()
