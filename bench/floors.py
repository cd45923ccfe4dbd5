"""Floors of this CPU that the speed figures are measured against (``docs/speed.md``, Limits).
One JSON object per line, appended to ``results/floors.jsonl``.

  python bench/floors.py mf                # an ml-100k MF epoch: jaxrec's, and its floor
  python bench/floors.py topk              # one [1024, 26744] ranking chunk: product, mask, top-k
  python bench/floors.py ranking gowalla synthetic-1000000 ...   # full ranking vs the bare product
  python bench/floors.py stages synthetic-1000000   # where a full ranking's time goes, stage by stage

``mf``: jaxrec's MF epoch on ml-100k (the engine's epoch function, batch 2048, Adam) and its
batching alone; then MF-BPR on tables of ml-100k's shape (943 x 1682, dim 64), 40 batches of 2048
(one epoch's steps, no batching) as one jitted ``lax.scan`` with optax's Adam / SGD / Adagrad,
and the gathers and scatter-adds of those steps alone. ``topk``: the bare product, the product
with 50k masked pairs, ``lax.top_k`` of it and :func:`jaxrec.top_k.block_top_k` of it (checked
equal). ``ranking``: ``jaxrec bench``'s ranking case on each named data set (``ml-100k``,
``gowalla``, ``synthetic-<pairs>``). ``stages``: the ranking of a trained-shape MF's test users
on that data set (the evaluator's chunks), built up stage by stage -- the product reduced to a
maximum, the training items masked in, the block maxima, the first ``lax.top_k`` (over the block
maxima), the whole two-stage top-k (``evaluate.rank_top``), the evaluator's ranking with its
metrics (``evaluate.mean_metrics``) -- each stage's
seconds, and microseconds per user; then ``lax.top_k`` alone (top 20 of 4096 random rows of 105,
640, 836 and 2,000 floats), microseconds per row. Medians, milliseconds (``ranking``, ``stages``: seconds).
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from common import emit, machine, peak_mb  # bench/ is the script's directory, on sys.path

from jaxrec.experiment import benchmarks
from jaxrec.top_k import block_top_k

OUT = Path(__file__).resolve().parent / "results" / "floors.jsonl"


def timed(f, *args, repeats: int = 7) -> float:
    """Median milliseconds of ``f(*args)`` (compiled by a first call)."""
    return round(benchmarks.timed(lambda: jax.block_until_ready(f(*args)), repeats)[1] * 1e3, 2)


def jaxrec_epoch() -> dict:
    """jaxrec's own MF epoch on ml-100k (what ``jaxrec bench`` times, one member) and its batches."""
    from jaxrec.config import DataConfig
    from jaxrec.experiment.data import load_split
    from jaxrec.experiment.training import build_training
    from jaxrec.train.state import member
    from jaxrec.train.steps import epoch_batches

    training = build_training([benchmarks.config("mf", 2048)], load_split(DataConfig(dataset="ml-100k")))
    state = member(training.state, 0)
    epoch = jax.jit(training.epoch)
    batches = jax.jit(lambda s, d: epoch_batches(s, d, training.batch_size))
    return {
        "jaxrec_epoch_ms": timed(epoch, state, training.data, repeats=15),
        "jaxrec_batches_ms": timed(batches, state, training.data, repeats=15),
    }


def mf() -> dict:
    n_users, n_items, dim, batch, steps = 943, 1682, 64, 2048, 40
    rng = np.random.default_rng(0)
    params = {
        k: jnp.asarray(rng.normal(size=(n, dim)).astype(np.float32) * 0.1) for k, n in (("u", n_users), ("i", n_items))
    }
    users = jnp.asarray(rng.integers(0, n_users, (steps, batch)))
    items = jnp.asarray(rng.integers(0, n_items, (steps, batch, 2)))

    def loss(p, u, it):
        s = jnp.einsum("bd,bnd->bn", p["u"][u], p["i"][it])
        return -jnp.mean(jax.nn.log_sigmoid(s[:, 0] - s[:, 1]))

    def epoch_of(tx):
        @jax.jit
        def epoch(p, o):
            def step(c, b):
                p, o = c
                up, o = tx.update(jax.grad(loss)(p, *b), o, p)
                return (optax.apply_updates(p, up), o), None

            return jax.lax.scan(step, (p, o), (users, items))[0]

        return epoch

    out = jaxrec_epoch()
    for name, tx in (("adam", optax.adam(1e-3)), ("sgd", optax.sgd(1e-3)), ("adagrad", optax.adagrad(1e-3))):
        out[f"epoch_{name}_ms"] = timed(epoch_of(tx), params, tx.init(params), repeats=15)

    @jax.jit
    def gathers(p):
        step = lambda c, b: (c + jnp.sum(p["u"][b[0]]) + jnp.sum(p["i"][b[1]]), None)  # noqa: E731
        return jax.lax.scan(step, 0.0, (users, items))[0]

    @jax.jit
    def scatters(p):
        def step(c, b):
            gu = jnp.zeros_like(p["u"]).at[b[0]].add(jnp.ones((batch, dim)))
            gi = jnp.zeros_like(p["i"]).at[b[1]].add(jnp.ones((batch, 2, dim)))
            return c + gu[0, 0] + gi[0, 0], None

        return jax.lax.scan(step, 0.0, (users, items))[0]

    out["gathers_ms"] = timed(gathers, params, repeats=15)
    out["scatter_adds_ms"] = timed(scatters, params, repeats=15)
    return out


def topk() -> dict:
    rows, n, dim, k = 1024, 26744, 64, 20
    rng = np.random.default_rng(0)
    u = jnp.asarray(rng.normal(size=(rows, dim)).astype(np.float32))
    v = jnp.asarray(rng.normal(size=(n, dim)).astype(np.float32) * np.linspace(0.2, 2, n, dtype=np.float32)[:, None])
    er = jnp.asarray(rng.integers(0, rows, 50_000).astype(np.int32))
    ec = jnp.asarray(rng.integers(0, n, 50_000).astype(np.int32))
    masked = lambda u, v, er, ec: (u @ v.T).at[er, ec].set(-jnp.inf, mode="drop")  # noqa: E731
    bare = jax.jit(lambda u, v: jnp.max(u @ v.T))
    mask_only = jax.jit(lambda u, v, er, ec: jnp.max(masked(u, v, er, ec)))
    lax_top = jax.jit(lambda u, v, er, ec: jax.lax.top_k(masked(u, v, er, ec), k))
    two_stage = jax.jit(lambda u, v, er, ec: block_top_k(masked(u, v, er, ec), k))
    a, b = lax_top(u, v, er, ec), two_stage(u, v, er, ec)
    assert bool(jnp.all(a[0] == b[0])) and bool(jnp.all(a[1] == b[1])), "two-stage top-k differs"
    return {
        "bare_ms": timed(bare, u, v),
        "masked_ms": timed(mask_only, u, v, er, ec),
        "lax_top_k_ms": timed(lax_top, u, v, er, ec),
        "block_top_k_ms": timed(two_stage, u, v, er, ec),
    }


def stages(name: str) -> dict:
    from jaxrec.evaluate import mean_metrics, model_chunk, rank_top, split_ranking
    from jaxrec.experiment.studies.bench import _split
    from jaxrec.experiment.training import build_training
    from jaxrec.top_k import block_maxima
    from jaxrec.train.state import member

    split = _split(name)
    training = build_training([benchmarks.config("mf", 2048)], split)
    variables = {**member(training.state.params, 0), **training.inputs}
    data = split_ranking(split, "test", min(1024, model_chunk(training.model, split.n_items)))
    cache = training.model.apply(variables, method="embeddings")
    n, k = split.n_items, 20

    def score_all(u):
        return cache["user"][u] @ cache["item"].T

    def masked(u, er, ec):
        return score_all(u).at[er, ec].set(-jnp.inf, mode="drop")

    def chunks(body):  # body(users, exclude_rows, exclude_cols) on every chunk of the evaluator's
        return lambda d: jax.lax.map(lambda c: body(*c), (d.users, d.exclude_rows, d.exclude_cols))

    cumulative = {
        "product_max": chunks(lambda u, er, ec: jnp.max(score_all(u), axis=1)),
        "masked_max": chunks(lambda u, er, ec: jnp.max(masked(u, er, ec), axis=1)),
        "block_maxima": chunks(lambda u, er, ec: block_maxima(masked(u, er, ec))[:, :k]),
        "first_top_k": chunks(lambda u, er, ec: jax.lax.top_k(block_maxima(masked(u, er, ec)), k)[1]),
        "two_stage_top_k": chunks(lambda u, er, ec: rank_top(score_all(u), er, ec, k)[1]),
        "ranking": lambda d: mean_metrics(score_all, d, (k,)),  # the evaluator itself: hits and metrics
    }
    users = int(np.asarray(data.mask).sum())
    out = {"data": name, "users": users, "chunk": int(data.users.shape[1]), "items": n}
    for stage, fn in cumulative.items():
        ms = timed(jax.jit(fn), data, repeats=3)
        out[f"{stage}_s"] = round(ms / 1e3, 3)
        out[f"{stage}_us_per_user"] = round(ms * 1e3 / users, 2)
    rng = np.random.default_rng(0)  # lax.top_k alone: its cost per row at a few row lengths
    for length in (105, 640, 836, 2000):
        x = jnp.asarray(rng.normal(size=(4096, length)).astype(np.float32))
        out[f"lax_top_k_{length}_us_per_row"] = round(timed(jax.jit(lambda x: jax.lax.top_k(x, k)), x) * 1e3 / 4096, 2)
    return out


def ranking(names: list[str]) -> list[dict]:
    from jaxrec.experiment.studies.bench import _split

    return [benchmarks.ranking_case(name, _split(name), "mf", 3) for name in names]


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "mf"
    if which == "ranking":
        rows = ranking(sys.argv[2:])
    elif which == "stages":
        rows = [{"case": "stages", **stages(name)} for name in sys.argv[2:]]
    else:
        rows = [{"case": which, **{"mf": mf, "topk": topk}[which]()}]
    for row in rows:
        emit({"bench": "floors", **row, "peak_rss_mb": round(peak_mb()), **machine()}, str(OUT))
