"""The certified ensemble from a config: ``T`` bases per kind trained on user subsamples in chunks
of members, their votes, the ensemble's accuracy and its certificate (PORE, Jia et al., USENIX
Security 2023). The study around it is :mod:`jaxrec.experiment.studies.certify`; the maths on
plain values (:func:`jaxrec.robustness.certificate.certify`, ``target_bound``, ``curve``, PORE's
vote files) is :mod:`jaxrec.robustness.certificate` and the votes are
:mod:`jaxrec.robustness.bagging`.

A ``model`` base is this config's model and train sections. Its ``T`` sub-models train as
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
from jaxrec.evaluate import mean_metrics, split_ranking
from jaxrec.experiment.benchmarks import peak_rss_mb
from jaxrec.experiment.training import train_members
from jaxrec.robustness import bagging
from jaxrec.robustness.bagging import pairs_mask


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
    """Train ``certify.sub_models`` bases of kind ``base`` (``item`` | ``model``) on ``train``
    (default ``split.train``; a poisoned one keeps the split's id space) and count their votes
    (see the module docstring); the ensemble's test metrics at ``ks`` (default ``top_n``)."""
    c = cfg.certify
    train = split.train if train is None else train
    seen = pairs_mask(split)
    seen_dev = jnp.asarray(seen)
    votes = jnp.zeros((split.n_users, split.n_items), jnp.int32)
    counts = np.bincount(train.users, minlength=split.n_users)
    capacity = max(int(counts[s].sum(axis=1).max()) for _, s, _ in _chunks(cfg, split.n_users))
    matrix = None
    if base == "item":
        matrix = jnp.zeros((split.n_users, split.n_items), jnp.float32).at[train.users, train.items].set(1)
    t0, traces = time.perf_counter(), 0
    for k, subsets, real in _chunks(cfg, split.n_users):
        if base == "item":
            votes = bagging.item_votes(votes, matrix, seen_dev, _padded(subsets, real), c.votes)
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
                votes, tr.model, run.fit.best, tr.inputs, seen_dev, _padded(subsets, real), c.votes, tr.data_batched
            )
            traces = max(traces, run.engine.epoch.traces())
        jax.block_until_ready(votes)
        log(f"{base}: {min((k + 1) * len(subsets), c.sub_models)} of {c.sub_models} bases")
    seconds = time.perf_counter() - t0
    metrics = _ensemble_metrics(votes, split_ranking(split, "test"), tuple(ks or (c.top_n,)))
    return Ensemble(base, np.asarray(votes), c.sub_models, metrics, seconds, peak_rss_mb(), traces)


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
