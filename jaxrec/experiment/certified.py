"""The certified ensemble from a config: ``T`` bases per kind trained on user subsamples in chunks
of members, their votes, the ensemble's accuracy and its certificate (PORE, Jia et al., USENIX
Security 2023). The study around it is :mod:`jaxrec.experiment.studies.certify`, the math is
:mod:`jaxrec.robustness.certificate` and the votes are :mod:`jaxrec.robustness.bagging`.

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
import re
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.attacks.metrics import TargetRanking, pair_outcomes
from jaxrec.config import Config
from jaxrec.data.interactions import Interactions, Split
from jaxrec.errors import JaxrecError
from jaxrec.evaluate import mean_metrics, split_ranking
from jaxrec.experiment.benchmarks import peak_rss_mb
from jaxrec.experiment.training import train_members
from jaxrec.robustness import bagging
from jaxrec.robustness.certificate import certified_counts, target_hr_bound, vote_bounds


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


def pairs_mask(split: Split, parts: tuple[str, ...] = ("train", "valid")) -> np.ndarray:
    """``[n_users, n_items]`` bool: the (user, item) pairs of the split's ``parts``. The default
    is the items a user never gets recommended (training and validation)."""
    mask = np.zeros((split.n_users, split.n_items), bool)
    for part in (getattr(split, p) for p in parts):
        if part is not None:
            mask[part.users, part.items] = True
    return mask


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


def target_bound(
    votes: np.ndarray,
    total: int,
    targets: np.ndarray,
    eligible: np.ndarray,
    candidates: np.ndarray | None,
    top_n: int,
    subsample: int,
    alpha: float,
    fakes: np.ndarray,
) -> np.ndarray:
    """``[E]``: the certified upper bound of the ``targets``' HR@N (mean over targets) for every
    ``e`` (:func:`jaxrec.robustness.certificate.target_hr_bound`), from ``total`` bases' votes."""
    lower, upper = vote_bounds(votes, total, alpha, votes.size)
    n = votes.shape[0]
    return target_hr_bound(lower, upper, targets, eligible, top_n, n, subsample, fakes, candidates).mean(axis=0)


def certify(
    votes: np.ndarray,
    total: int,
    relevant: np.ndarray,
    candidates: np.ndarray | None,
    top_n: int,
    n_votes: int,
    subsample: int,
    alpha: float,
    fakes: np.ndarray,
) -> np.ndarray:
    """``[U, E]`` certified ``r`` of every user from vote counts of ``total`` bases (bounds at
    confidence ``1 - alpha``, Bonferroni over every (user, item)). ``relevant``: ``[U, I]`` the
    items certified (the test items); ``candidates``: the items the ensemble may recommend."""
    lower, upper = vote_bounds(votes, total, alpha, votes.size)
    return certified_counts(lower, upper, relevant, top_n, n_votes, votes.shape[0], subsample, fakes, candidates)


def curve(r: np.ndarray, relevant: np.ndarray, top_n: int) -> tuple[np.ndarray, np.ndarray]:
    """Certified precision@N and recall@N against ``e`` (``[E]`` each), the mean over the users
    with a relevant item."""
    sizes = relevant.sum(axis=1)
    users = sizes > 0
    return (r[users] / top_n).mean(axis=0), (r[users] / sizes[users, None]).mean(axis=0)


# ------------------------------------------------------------------------------------------------
# PORE's own vote files (its repository's data/<dataset>/<dataset>_<s>_<N'>_<T>_<base>_default/)

_DIR = re.compile(r"^[^_]+_(\d+)_(\d+)_(\d+)_([a-z]+)")
_PAIR = re.compile(r"\((\d+),(\d+)\)")


@dataclasses.dataclass
class Reference:
    """PORE's published votes: ``votes [n, m]``, ``relevant [n, m]`` (its test items), and the
    ``subsample``, ``n_votes`` and ``sub_models`` its directory name gives."""

    label: str
    votes: np.ndarray
    relevant: np.ndarray
    subsample: int
    n_votes: int
    sub_models: int


def read_reference(directory: str | Path) -> Reference:
    """PORE's ``frequency_aggregation_1.txt`` (one line per user, ids from 1:
    ``(item,count);(item,count)...``, the file in one pair of brackets) and ``test_1.csv``
    (``userID,itemID,...``), in ``directory`` named as in its repository
    (``100k_200_1_100000_sar_default``: s, N', T, base). A bad file or line is an error that names
    it."""
    d = Path(directory)
    m = _DIR.match(d.name)
    if m is None:
        raise JaxrecError(f"{d}: not a PORE vote directory (named like 100k_200_1_100000_sar_default)")
    s, n_votes, total, alg = int(m[1]), int(m[2]), int(m[3]), m[4]
    votes_path, test_path = d / "frequency_aggregation_1.txt", d / "test_1.csv"
    for p in (votes_path, test_path):
        if not p.is_file():
            raise JaxrecError(
                f"{p}: no such file (PORE's vote directory holds frequency_aggregation_1.txt and test_1.csv)"
            )
    rows = []
    for line_no, line in enumerate(votes_path.read_text().splitlines(), 1):
        tokens = [t for t in line.strip().lstrip("[").rstrip("]").split(";") if t]
        pairs = [_PAIR.fullmatch(t) for t in tokens]
        if not all(pairs):
            raise JaxrecError(f"{votes_path}, line {line_no}: expected (item,count);... , got {line[:60]!r}")
        rows.append([(int(p[1]), int(p[2])) for p in pairs])
    tests = []
    for line_no, line in enumerate(test_path.read_text().splitlines()[1:], 2):
        fields = line.split(",")
        if len(fields) < 2 or not fields[0].isdigit() or not fields[1].isdigit():
            raise JaxrecError(f"{test_path}, line {line_no}: expected userID,itemID,..., got {line[:60]!r}")
        tests.append((int(fields[0]), int(fields[1])))
    n = len(rows)
    m_items = max([i for r in rows for i, _ in r] + [i for _, i in tests])
    votes = np.zeros((n, m_items), np.int64)
    for u, r in enumerate(rows):
        for i, c in r:
            votes[u, i - 1] = c
    relevant = np.zeros((n, m_items), bool)
    for u, i in tests:
        if not 1 <= u <= n:
            raise JaxrecError(f"{test_path}: user {u} has no line in {votes_path.name} ({n} users)")
        relevant[u - 1, i - 1] = True
    return Reference(f"PORE {alg}", votes, relevant, s, n_votes, total)
