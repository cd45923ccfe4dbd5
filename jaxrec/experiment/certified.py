"""The certified ensemble from a config: ``T`` bases per kind trained on user subsamples in chunks
of members, their votes, the ensemble's accuracy and its certificate (PORE, Jia et al., USENIX
Security 2023). The study around it is :mod:`jaxrec.experiment.studies.certify`; the maths on
plain values (:func:`jaxrec.robustness.certificate.certify`, ``target_bound``, ``curve``, PORE's
vote files) is :mod:`jaxrec.robustness.certificate` and the votes are
:mod:`jaxrec.robustness.bagging`.

A ``transition`` base is the Markov chain of :mod:`jaxrec.models.markov` (``certify.order``,
``certify.decay``) counted over its subsample's ordered training events; a user's query is its
last items at test time. A ``model`` base is this config's model and train sections (a sequence
model queries with its test-time history window). Its ``T`` sub-models train as
members of one compiled program per chunk (``certify.chunk`` of them). Each member trains on
the training pairs of its subsample's users. All chunks are padded to one capacity, the most
pairs of any subsample, so every chunk runs the same program. Member ``t`` trains with seed
``train.seed + t`` for ``train.epochs`` (no validation). A last, partial chunk is filled with
repeats whose votes are dropped.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.attacks.metrics import TargetRanking, pair_outcomes
from jaxrec.config import Config
from jaxrec.data.interactions import Interactions, Split
from jaxrec.data.sequences import histories, ordered_items, split_order
from jaxrec.evaluate import mean_metrics, split_ranking
from jaxrec.experiment.benchmarks import peak_rss_mb
from jaxrec.experiment.training import train_members
from jaxrec.models import MODELS
from jaxrec.models.markov import check_items, contexts, user_transitions
from jaxrec.models.sequential import is_sequential
from jaxrec.robustness import bagging
from jaxrec.robustness.bagging import pairs_mask
from jaxrec.train.sequence import bucket_widths, sequence_shape


@dataclasses.dataclass
class Ensemble:
    """One base kind's ensemble: ``votes [n_users, n_items]`` counts of ``sub_models`` bases,
    its clean metrics, and the time and memory it took."""

    base: str
    votes: np.ndarray
    sub_models: int
    metrics: dict
    seconds: float
    peak_rss_mb: float
    traces: int = 0  #: compilations of the members' epoch (1: one program for every chunk)


def _chunks(cfg: Config, n_users: int):
    """``(chunk index, subsets [M, s], real rows)`` covering ``T`` subsamples in chunks of ``M``."""
    c = cfg.certify
    size = min(c.chunk, c.sub_models)
    for k in range(-(-c.sub_models // size)):
        yield k, bagging.draw_subsets(n_users, c.subsample, size, c.seed, k), min(size, c.sub_models - k * size)


def _padded(subsets: np.ndarray, real: int) -> jax.Array:
    return jnp.asarray(np.where(np.arange(len(subsets))[:, None] < real, subsets, -1))


def ensemble(
    cfg: Config, split: Split, base: str, log=lambda *a: None, train: Interactions | None = None, ks=None
) -> Ensemble:
    """Train ``certify.sub_models`` bases of kind ``base`` (``item`` | ``model`` |
    ``transition``) on ``train``
    (default ``split.train``; a poisoned one keeps the split's id space) and count their votes
    (see the module docstring); the ensemble's test metrics at ``ks`` (default ``top_n``)."""
    c = cfg.certify
    train = split.train if train is None else train
    seen = pairs_mask(split)
    seen_dev = jnp.asarray(seen)
    votes = jnp.zeros((split.n_users, split.n_items), jnp.int32)
    t0, traces = time.perf_counter(), 0
    matrix = chain = queries = None
    if base == "item":
        matrix = jnp.zeros((split.n_users, split.n_items), jnp.float32).at[train.users, train.items].set(1)
    elif base == "transition":
        chain = _chain(cfg, split, train)
    else:
        capacity, queries = _capacity(cfg, split, train)
    for k, subsets, real in _chunks(cfg, split.n_users):
        if base == "item":
            votes = bagging.item_votes(votes, matrix, seen_dev, _padded(subsets, real), c.votes)
        elif base == "transition":
            votes = bagging.transition_votes(
                votes, *chain, seen_dev, _padded(subsets, real), c.votes, decay=c.decay, lam=1.0
            )
        else:
            start = k * len(subsets)
            trains_cfg = [
                dataclasses.replace(cfg.train, seed=cfg.train.seed + start + m, eval_every=0)
                for m in range(len(subsets))
            ]
            cfgs = [dataclasses.replace(cfg, train=t) for t in trains_cfg]
            trains = [train.select(np.isin(train.users, s)) for s in subsets]
            run = train_members(cfgs, split, progress=False, trains=trains, capacity=capacity, test=False)
            tr = run.training
            votes = bagging.model_votes(
                votes,
                tr.model,
                run.fit.best,
                tr.inputs,
                seen_dev,
                _padded(subsets, real),
                c.votes,
                tr.data_batched,
                queries,
            )
            traces = max(traces, run.engine.epoch.traces())
        jax.block_until_ready(votes)
        log(f"{base}: {min((k + 1) * len(subsets), c.sub_models)} of {c.sub_models} bases")
    seconds = time.perf_counter() - t0
    metrics = _ensemble_metrics(votes, split_ranking(split, "test"), tuple(ks or (c.top_n,)))
    return Ensemble(base, np.asarray(votes), c.sub_models, metrics, seconds, peak_rss_mb(), traces)


def _chain(cfg: Config, split: Split, train: Interactions) -> tuple:
    """The transition base's ``(src, dst, ctx)`` on device: every user's training transitions
    and last ``certify.order`` items at test time (training then validation events)."""
    check_items(split.n_items, "the transition base")
    order = split_order(split)
    indptr, items = ordered_items([train], order)
    src, dst = user_transitions(indptr, items, split.n_items)
    q_ptr, q_items = ordered_items([train, split.valid], order)
    ctx = contexts(q_ptr, q_items, np.arange(split.n_users), cfg.certify.order, split.n_items)
    return jnp.asarray(src), jnp.asarray(dst), jnp.asarray(ctx)


def _capacity(cfg: Config, split: Split, train: Interactions) -> tuple:
    """The model base's one shape for every chunk (pairs; a sequence model's bucket shape,
    :func:`~jaxrec.train.sequence.sequence_shape`, over every subsample) and its queries (a
    sequence model's test-time history windows; None: user ids)."""
    subsets = [s for _, chunk, _ in _chunks(cfg, split.n_users) for s in chunk]
    if not is_sequential(MODELS[cfg.model.name]):
        counts = np.bincount(train.users, minlength=split.n_users)
        return max(int(counts[s].sum()) for s in subsets), None
    t, max_len = cfg.train, cfg.model.max_len
    order = split_order(split)
    parts = [train.select(np.isin(train.users, s)) for s in subsets]
    shape = sequence_shape(parts, order, max_len, t.batch_size, bucket_widths(t.buckets, max_len), t.windows)
    return shape, jnp.asarray(histories([train, split.valid], order, max_len))


def _votes_score(votes):
    return lambda users: votes[users].astype(jnp.float32)


@functools.partial(jax.jit, static_argnums=2)
def _mean_metrics(votes, data, ks):
    return mean_metrics(_votes_score(votes), data, ks)


def _ensemble_metrics(votes: jax.Array, data, ks) -> dict:
    """The ensemble's test metrics: its top-N are the most-voted unseen items (ties: lower id)."""
    return {k: float(v) for k, v in _mean_metrics(votes, data, ks).items()}


@functools.partial(jax.jit, static_argnums=2)
def _pair_outcomes(votes, data, ks):
    return pair_outcomes(_votes_score(votes), data, ks)


def target_outcomes(votes: np.ndarray, ranking: TargetRanking, ks) -> dict:
    """The ensemble's ``hit@K`` and ``score`` (the target's votes) per (user, target) pair of
    ``ranking``, as :func:`jaxrec.attacks.metrics.target_metrics` takes them."""
    out = jax.device_get(_pair_outcomes(jnp.asarray(votes), ranking.data, tuple(ks)))
    return {k: np.asarray(v)[: ranking.pair_user.size] for k, v in out.items()}
