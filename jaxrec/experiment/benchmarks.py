"""The measurements of ``jaxrec bench``: each case times exactly what the commands run.

Every case builds its training with :func:`~jaxrec.experiment.training.build_training` (the path
of ``jaxrec train`` / ``sweep``), compiles once, then times repeated calls and reports the
**median** (the machine is shared and noisy). A case returns plain rows (``case``, what was
measured, ``seconds`` and the case's ratios); ``peak_rss_mb`` is the process's peak resident
memory so far (cases run from small to large, so it bounds the case just measured).

* :func:`epoch_case` -- seconds per training epoch and microseconds per training pair;
* :func:`ranking_case` -- full-ranking evaluation of the test users against the bare score
  product (``score_all`` in chunks of users, no masking or top-k): their ratio is the ranking's
  overhead over the compute floor;
* :func:`members_case` -- ``M`` seeds as members of one program: seconds per member-epoch
  against one member;
* :func:`variants_case` -- ``M`` members each on its own data variant (noisy retraining, the
  shape of poisoned retraining) against the same trainings run one after the other;
* :func:`apr_case` -- an APR epoch against a plain one;
* :func:`strengths_case` -- a robustness curve of ``S`` strengths vmapped in one program
  against a Python loop over the strengths;
* :func:`sequence_case` -- a SASRec-BCE epoch (the paper's settings) at a window length, every
  batch padded to it or run in length buckets, float32 or bfloat16: seconds and real tokens/s;
  :func:`sequence_members_case` -- ``M`` seeds as members of one program against one member.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.config import AdvConfig, Config, EvalConfig, ModelConfig, TrainConfig
from jaxrec.data.interactions import Split
from jaxrec.evaluate import compile_evaluator, model_chunk, split_ranking
from jaxrec.experiment.programs import member_loop
from jaxrec.experiment.training import build_training
from jaxrec.robustness.data_noise import perturb_data
from jaxrec.robustness.strengths import perturbed_metrics
from jaxrec.train.engine import init_tracker, make_engine
from jaxrec.train.state import member

#: the model settings every case trains (the protocol's: 64 dimensions, RecBole's defaults)
MODELS = {
    "mf": ModelConfig(name="mf", dim=64),
    "neumf": ModelConfig(name="neumf", dim=64, initializer="normal", init_std=0.01),
    "lightgcn": ModelConfig(name="lightgcn", dim=64, layers=2, initializer="xavier_uniform"),
}


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, MB (Linux ``ru_maxrss`` is in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def config(model: str, batch: int, optimizer: str = "adam", seed: int = 0, **adv) -> Config:
    loss = "bce" if model == "neumf" else "bpr"
    return Config(
        model=MODELS[model],
        train=TrainConfig(batch_size=batch, lr=1e-3, loss=loss, optimizer=optimizer, seed=seed),
        eval=EvalConfig(ks=(20,)),
        adv=AdvConfig(**adv) if adv else AdvConfig(),
    )


def timed(fn: Callable, repeats: int) -> tuple[float, float]:
    """``(first call seconds, median of `repeats` more)``; ``fn`` must block on its result."""
    t = time.perf_counter()
    fn()
    first = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return first, float(np.median(times))


def _epoch_seconds(cfgs: list[Config], split: Split, repeats: int, trains=None) -> tuple[float, object]:
    """Median seconds of one epoch of the member engine of ``cfgs`` (compiled first), its members
    run as ``train_members`` runs them (``parallel.member_loop``)."""
    training = build_training(cfgs, split, trains)
    n = len(cfgs)
    loop = member_loop(cfgs[0].parallel.member_loop, training.state, n)
    engine = make_engine(training.epoch, n, data_batched=training.data_batched, n_traces=None, loop=loop)
    box = [training.state, init_tracker(training.state.params, n, False)]

    def one():
        box[0], box[1], metrics = engine.epoch(box[0], box[1], training.data, 1)
        jax.block_until_ready(metrics)

    _, seconds = timed(one, repeats)
    return seconds, training


def epoch_case(data: str, split: Split, model: str, batch: int, optimizer: str, repeats: int) -> dict:
    seconds, training = _epoch_seconds([config(model, batch, optimizer)], split, repeats)
    pairs = len(split.train)
    return {
        "case": "epoch",
        "data": data,
        "model": model,
        "optimizer": optimizer,
        "pairs": pairs,
        "batch": training.batch_size,
        "seconds": seconds,
        "us_per_pair": seconds / pairs * 1e6,
        "peak_rss_mb": peak_rss_mb(),
    }


def ranking_case(data: str, split: Split, model: str, repeats: int, chunk: int = 1024) -> dict:
    """Full ranking (top-K with the training items masked) vs ``score_all`` alone."""
    training = build_training([config(model, 2048)], split)
    params = member(training.state.params, 0)
    variables = {**params, **training.inputs}
    chunk = min(chunk, model_chunk(training.model, split.n_items))
    ranking = split_ranking(split, "test", chunk)
    evaluator = compile_evaluator(training.model, variables, ranking, (20,))
    _, rank_s = timed(lambda: evaluator(variables, ranking), repeats)
    bare = _bare_product(training.model, chunk)
    users = ranking.users
    _, bare_s = timed(lambda: jax.block_until_ready(bare(variables, users)), repeats)
    return {
        "case": "ranking",
        "data": data,
        "model": model,
        "users": int(np.asarray(ranking.mask).sum()),
        "items": split.n_items,
        "seconds": rank_s,
        "bare_seconds": bare_s,
        "overhead": rank_s / bare_s,
        "peak_rss_mb": peak_rss_mb(),
    }


def _bare_product(model, chunk: int):
    """``(variables, users [n_chunks, chunk]) -> []``: every chunk's ``score_all`` reduced to
    one number (so nothing is skipped), the model's embeddings computed once."""

    @jax.jit
    def run(variables, users):
        cache = model.apply(variables, method="embeddings")

        def one(total, u):
            scores = model.apply(variables, u, cache, method="score_all")
            return total + jnp.sum(scores[:, :1]) + jnp.max(scores), None

        return jax.lax.scan(one, jnp.float32(0), users)[0]

    return run


def members_case(data: str, split: Split, model: str, batch: int, counts: list[int], repeats: int) -> list[dict]:
    rows, one = [], None
    for m in counts:
        seconds, _ = _epoch_seconds([config(model, batch, seed=s) for s in range(m)], split, repeats)
        one = seconds if one is None else one
        rows.append(
            {
                "case": "members",
                "data": data,
                "model": model,
                "members": m,
                "seconds": seconds,
                "member_epoch_s": seconds / m,
                "speedup": one * m / seconds,  # vs m separate epochs of one member
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    return rows


def variants_case(data: str, split: Split, model: str, batch: int, m: int, repeats: int) -> dict:
    """``m`` members on their own noisy variants (5 % added pairs) vs the ``m`` trainings one by one."""
    trains = [perturb_data(split.train, "add", 0.05, seed) for seed in range(m)]
    cfgs = [config(model, batch, seed=s) for s in range(m)]
    together, _ = _epoch_seconds(cfgs, split, repeats, trains)
    alone = sum(_epoch_seconds([c], split, repeats, [t])[0] for c, t in zip(cfgs, trains))
    return {
        "case": "variants",
        "data": data,
        "model": model,
        "members": m,
        "seconds": together,
        "sequential_seconds": alone,
        "speedup": alone / together,
        "peak_rss_mb": peak_rss_mb(),
    }


def apr_case(data: str, split: Split, model: str, batch: int, repeats: int) -> list[dict]:
    """An APR epoch against a plain one; a graph model also with ``adv.perturb_at: final`` (the
    propagated embeddings perturbed: half the propagations of the tables' APR per step)."""
    plain, training = _epoch_seconds([config(model, batch)], split, repeats)
    places = ("tables", "final") if getattr(training.model, "graph_input", False) else ("tables",)
    rows = []
    for at in places:
        apr, _ = _epoch_seconds([config(model, batch, method="apr", eps=0.5, reg=1.0, perturb_at=at)], split, repeats)
        rows.append(
            {
                "case": "apr",
                "data": data,
                "model": model,
                "perturb_at": at,
                "seconds": apr,
                "plain_seconds": plain,
                "overhead": apr / plain,
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    return rows


def strengths_case(data: str, split: Split, model: str, n: int, repeats: int) -> dict:
    """``n`` FGM strengths of one robustness curve: vmapped in one program vs one call each."""
    training = build_training([config(model, 2048)], split)
    params = member(training.state.params, 0)
    eps = list(np.linspace(0.05, 2.0, n))
    tdata = training.data
    ranking = split_ranking(split, "test", model_chunk(training.model, split.n_items, n))
    one_ranking = split_ranking(split, "test", model_chunk(training.model, split.n_items, 1))

    def vmapped():
        perturbed_metrics(training.model, params, training.inputs, tdata, ranking, eps=eps, relative=True)

    def loop():
        for e in eps:
            perturbed_metrics(training.model, params, training.inputs, tdata, one_ranking, eps=[e], relative=True)

    _, together = timed(vmapped, repeats)
    _, alone = timed(loop, repeats)
    return {
        "case": "strengths",
        "data": data,
        "model": model,
        "strengths": n,
        "seconds": together,
        "sequential_seconds": alone,
        "speedup": alone / together,
        "peak_rss_mb": peak_rss_mb(),
    }


def sequence_config(max_len: int, buckets: tuple = (8, 16, 32), dtype: str = "float32", seed: int = 0) -> Config:
    """SASRec-BCE with the SASRec code's settings (hidden 50, 2 blocks, 1 head, dropout 0.5, batch
    128, Adam 1e-3 with betas 0.9 / 0.98, the most recent window per user)."""
    return Config(
        model=ModelConfig(name="sasrec", dim=50, layers=2, heads=1, max_len=max_len, dropout=0.5, dtype=dtype),
        train=TrainConfig(
            batch_size=128, lr=1e-3, betas=(0.9, 0.98), loss="bce", windows="last", buckets=buckets, seed=seed
        ),
        eval=EvalConfig(ks=(10,)),
    )


def sequence_case(data: str, split: Split, max_len: int, bucketed: bool, dtype: str, repeats: int) -> dict:
    """One SASRec-BCE epoch at ``max_len``: ``bucketed`` (length buckets 8 / 16 / 32) or every
    batch padded to ``max_len`` (the reference), in ``dtype``."""
    cfg = sequence_config(max_len, (8, 16, 32) if bucketed else (), dtype)
    seconds, training = _epoch_seconds([cfg], split, repeats)
    tokens = int(np.sum(np.asarray(training.data.targets) != split.n_items))
    return {
        "case": "sequence",
        "data": data,
        "model": "sasrec",
        "max_len": max_len,
        "batching": "buckets" if bucketed else "padded",
        "dtype": dtype,
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "peak_rss_mb": peak_rss_mb(),
    }


def sequence_members_case(data: str, split: Split, m: int, repeats: int) -> dict:
    """``m`` SASRec seeds as members of one program (max length 50, buckets) against one member."""
    one, _ = _epoch_seconds([sequence_config(50)], split, repeats)
    together, _ = _epoch_seconds([sequence_config(50, seed=s) for s in range(m)], split, repeats)
    return {
        "case": "members",
        "data": data,
        "model": "sasrec",
        "members": m,
        "seconds": together,
        "member_epoch_s": together / m,
        "speedup": one * m / together,
        "peak_rss_mb": peak_rss_mb(),
    }
