"""Metrics under parameter perturbation at many strengths and seeds in one vmapped program.

The adversary's loss is BPR over the training (user, positive, sampled negative) triples for
every model, so models are attacked alike (one uniform negative per pair, drawn per seed). For a
parameter set, :func:`perturbed_metrics` runs one compiled program that, for every seed ``r`` and strength
``eps_s``:

* perturbs the embedding tables (:mod:`jaxrec.robustness.perturb`): FGM / FGSM directions come
  from one gradient per seed, shared by all strengths (only the scale differs); random / gaussian
  noise draws one direction per seed; PGD iterates per strength;
* ranks every test user against the perturbed model (the one evaluator,
  :func:`jaxrec.evaluate.rank_users`, with the clean model's ranking as the reference: top-K
  Jaccard overlap and the score shift of the clean top-K);
* and measures the adversary's loss at the perturbed tables.

Seeds are a ``jax.vmap`` around strengths vmapped ``batch`` at a time (all of them by default;
groups run as a ``lax.map`` inside the same program, see :func:`auto_batch`), so the model's
embeddings hook (LightGCN's propagation: one shared sparse product per layer,
:mod:`jaxrec.models.propagation`) runs batched over them. Memory is ``width * chunk * n_items`` scores
per ranking chunk (``width = seeds * batch``): size the ranking's chunk with
:func:`jaxrec.evaluate.model_chunk` with that width.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.data.sampling import sample_negatives
from jaxrec.errors import JaxrecError
from jaxrec.evaluate import RankingData, check_ks, for_each_member, model_chunk, rank_users, score_function
from jaxrec.models.base import embedding_tables, replace_embedding_tables
from jaxrec.models.sequential import is_sequential
from jaxrec.robustness import perturb, windows
from jaxrec.train.losses import bpr_loss

METHODS = perturb.METHODS
TRACES: collections.Counter = collections.Counter()  #: traces of the perturbed-metrics program per method


class PGD(NamedTuple):
    """PGD settings (static): ``steps`` iterations of ``step_size * eps`` (None: ``2.5 / steps``)."""

    steps: int = 10
    step_size: float | None = None
    random_start: bool = False


PAIR_CHUNK = 4096  #: training pairs per step of the adversary's loss (bounds its memory)


def adversary_loss(model, params, inputs: dict, data, key: jax.Array, chunk: int = PAIR_CHUNK):
    """``tables -> scalar``: mean BPR over every training pair of ``data`` (a
    :class:`~jaxrec.train.steps.TrainData`; one uniform negative each, drawn from ``key``) with
    ``tables`` in place of ``params``' embedding tables.

    The model's embeddings hook (propagation) runs once; the pairs are scored ``chunk`` at a
    time under ``jax.checkpoint``, so the loss and its gradient hold ``chunk`` pairs' activations
    (per vmapped strength), not all of them.
    """
    n = -(-data.n_pairs // chunk)
    pad = n * chunk - data.n_pairs
    neg = sample_negatives(key, data.positives, data.users, 1)
    rows = lambda a: jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)).reshape(n, chunk, *a.shape[1:])  # noqa: E731
    pairs = (rows(data.users), rows(jnp.concatenate([data.items[:, None], neg], axis=1)), rows(data.mask))

    def loss(tables):
        variables = {**replace_embedding_tables(params, tables), **inputs}
        cache = model.apply(variables, method="embeddings")

        @jax.checkpoint
        def part(c):
            users, items, mask = c
            scores = model.apply(variables, users, items, cache, method="score")
            return jnp.sum(bpr_loss(scores[:, 0], scores[:, 1:]) * mask)

        return jnp.sum(jax.lax.map(part, pairs)) / jnp.sum(data.mask)

    return loss


def adversary_gradients(model, params, inputs: dict, data, key: jax.Array) -> dict:
    """``{table: [rows, d]}``: the gradient of :func:`adversary_loss` at ``params``."""
    return jax.grad(adversary_loss(model, params, inputs, data, key))(embedding_tables(params))


MIN_CHUNK_USERS = 128  #: :func:`auto_batch` keeps at least this many users per ranking chunk


def auto_batch(model, n_items: int, strengths: int, seeds: int = 1) -> int:
    """How many strengths to vmap together: all of them while a ranking chunk (sized by
    :func:`jaxrec.evaluate.model_chunk` for ``seeds * batch``) keeps at least :data:`MIN_CHUNK_USERS` users.

    Every chunk multiplies its users by all item embeddings of every vmapped model, so a very
    narrow chunk re-reads ``width`` item tables per handful of users: on Gowalla (40,981 items,
    32 strengths: 12 users a chunk) the full vmap was 1.4x slower than a loop on this 2-core
    CPU, while groups of 3 keep 136 users a chunk (bench/README.md)."""
    return int(max(1, min(strengths, model_chunk(model, n_items) // (MIN_CHUNK_USERS * max(1, seeds)))))


def _user_mean(per_user: dict, mask: jax.Array) -> dict:
    return {k: jnp.sum(jnp.where(mask, v, 0.0)) / jnp.sum(mask) for k, v in per_user.items()}


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5))
def _perturbed(model, ks, method, relative, pgd, batch, params, inputs, data, ranking, eps, keys):
    TRACES[method] += 1
    tables = embedding_tables(params)
    clean = rank_users(score_function(model, {**params, **inputs}), ranking, ks)
    mean = functools.partial(_user_mean, mask=ranking.mask)
    ndcg = f"ndcg@{max(ks)}"

    def per_seed(key):
        k_neg, k_dir = jax.random.split(key)
        loss = adversary_loss(model, params, inputs, data, k_neg)
        grads = jax.grad(loss)(tables) if method in ("fgm", "fgsm") else None  # once for every strength

        def per_strength(e):
            if method == "pgd":
                delta = perturb.pgd(loss, tables, e, pgd.steps, pgd.step_size, relative, pgd.random_start, k_dir)
            else:
                delta = perturb.perturbation(method, tables, grads, e, relative, k_dir)
            p = perturb.apply(params, delta)
            r = rank_users(score_function(model, {**p, **inputs}), ranking, ks, clean)
            moved = {k: t + delta[k].astype(t.dtype) for k, t in tables.items()}
            return mean(r.metrics), r.metrics[ndcg], loss(moved)

        # ``batch`` strengths at a time are one vmap (all of them: batch == len(eps))
        return (*jax.lax.map(per_strength, eps, batch_size=batch), loss(tables))

    metrics, user_ndcg, adv_loss, clean_loss = jax.vmap(per_seed)(keys)
    return mean(clean.metrics), clean.metrics[ndcg], metrics, user_ndcg, adv_loss, clean_loss


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5, 6))
def _perturbed_windows(model, ks, method, relative, pgd, batch, spec, params, ranking, eps, keys):
    """:func:`_perturbed` for a sequence model: each user's input window perturbed
    (:mod:`jaxrec.robustness.windows`), the adversary's loss per user a metric of the ranking."""
    TRACES[method] += 1
    cache = model.apply(params, method="embeddings")
    clean = rank_users(score_function(model, params), ranking, ks)
    unit = windows.item_row_norm(model, params) if relative else jnp.float32(1.0)
    mean = functools.partial(_user_mean, mask=ranking.mask)
    ndcg = f"ndcg@{max(ks)}"

    def per_seed(key):
        def per_strength(e):
            scorer = windows.window_scorer(model, params, cache, method, e, unit, pgd, spec, key)
            r = rank_users(scorer, ranking, ks, clean, context=True)
            m = mean(r.metrics)
            adv, clean_loss = m.pop("adv_loss"), m.pop("clean_loss")
            return m, r.metrics[ndcg], adv, clean_loss

        metrics, user_ndcg, adv, clean_loss = jax.lax.map(per_strength, eps, batch_size=batch)
        return metrics, user_ndcg, adv, clean_loss[0]

    metrics, user_ndcg, adv_loss, clean_loss = jax.vmap(per_seed)(keys)
    return mean(clean.metrics), clean.metrics[ndcg], metrics, user_ndcg, adv_loss, clean_loss


@dataclasses.dataclass
class PerturbedMetrics:
    """What :func:`perturbed_metrics` measured.

    Attributes:
      rows: one dict per (seed, strength): ``method``, ``eps``, ``seed``, every metric of the
        evaluator (``recall@K`` ...), ``jaccard@K``, ``score_shift@K`` and ``adv_loss``.
      clean: the unperturbed metrics and ``adv_loss`` (mean over the seeds' negatives).
      users: ``[U]`` evaluated user indices; clean_ndcg: ``[U]`` their clean NDCG at the largest K;
      user_ndcg: ``[R, S, U]`` the same under every (seed, strength).
    """

    rows: list
    clean: dict
    users: np.ndarray
    clean_ndcg: np.ndarray
    user_ndcg: np.ndarray


def perturbed_metrics(
    model,
    params,
    inputs: dict,
    data,
    ranking: RankingData,
    *,
    eps: Sequence[float],
    method: str = "fgm",
    ks: Sequence[int] = (20,),
    relative: bool = False,
    seeds: int = 1,
    key: jax.Array | None = None,
    pgd: PGD = PGD(),
    batch: int | None = None,
    window_loss: windows.WindowLoss | None = None,
) -> PerturbedMetrics:
    """Full-ranking metrics and rank stability of one parameter set at every strength of ``eps``
    and every one of ``seeds`` seeds, in one compiled, vmapped program.

    Args:
      params: one member's ``{"params": ...}``; inputs: the model's non-trainable collections;
        data: its training data (the adversary's triples).
      ranking: e.g. ``split_ranking(split, "test", model_chunk(model, n_items, seeds * batch))``.
      method: one of :data:`METHODS`; relative: eps x each table's mean row norm; pgd: PGD's
        settings.
      seeds: the adversary's negatives and the noise (or PGD's random start) are drawn per seed.
      batch: strengths vmapped together (None: all of them, one vmapped pass); fewer run as a
        ``lax.map`` over groups of ``batch`` inside the same program (:func:`auto_batch` picks
        one for the catalogue size). Size the ranking's chunk for ``seeds * batch``.
      window_loss: a sequence model's adversary loss (:class:`~jaxrec.robustness.windows.WindowLoss`,
        its training loss); a sequence model is perturbed in its users' input windows
        (:mod:`jaxrec.robustness.windows`), ``inputs`` and ``data`` are then unused, and
        ``ranking`` must carry the windows (``split_ranking(..., max_len=model.max_len)``).
    """
    if method not in METHODS:
        raise JaxrecError(f"unknown perturbation {method!r}; choose one of {METHODS}")
    if seeds < 1 or not len(eps):
        raise JaxrecError(f"perturbed metrics need at least one seed and one strength, got {seeds} and {list(eps)}")
    if any(not np.isfinite(e) or e < 0 for e in eps):
        raise JaxrecError(f"strengths must be finite and >= 0, got {list(eps)}")
    if method == "pgd" and pgd.steps < 1:
        raise JaxrecError(f"PGD needs at least one step, got {pgd.steps}")
    ks = check_ks(ks, model.n_items)
    key = jax.random.key(0) if key is None else key
    keys = jax.vmap(lambda r: jax.random.fold_in(key, r))(jnp.arange(seeds))
    batch = len(eps) if batch is None else int(batch)
    if not 1 <= batch <= len(eps):
        raise JaxrecError(f"batch must be between 1 and the number of strengths ({len(eps)}), got {batch}")
    eps_arr = jnp.asarray(eps, jnp.float32)
    if is_sequential(model):
        if ranking.queries is None:
            raise JaxrecError(f"{type(model).__name__} ranks history windows: build the ranking with max_len")
        spec = window_loss or windows.WindowLoss()
        out = _perturbed_windows(model, ks, method, relative, pgd, batch, spec, params, ranking, eps_arr, keys)
    else:
        out = _perturbed(model, ks, method, relative, pgd, batch, params, inputs, data, ranking, eps_arr, keys)
    clean, clean_user, metrics, user_ndcg, adv_loss, clean_loss = jax.device_get(out)
    rows = [
        {
            "method": method,
            "eps": float(e),
            "seed": r,
            **{k: float(v[r, s]) for k, v in metrics.items()},
            "adv_loss": float(adv_loss[r, s]),
        }
        for r in range(seeds)
        for s, e in enumerate(eps)
    ]
    mask = np.asarray(ranking.mask).reshape(-1)
    return PerturbedMetrics(
        rows=rows,
        clean={**{k: float(v) for k, v in clean.items()}, "adv_loss": float(np.mean(clean_loss))},
        users=np.asarray(ranking.users).reshape(-1)[mask],
        clean_ndcg=np.asarray(clean_user).reshape(-1)[mask],
        user_ndcg=np.asarray(user_ndcg).reshape(seeds, len(eps), -1)[:, :, mask],
    )


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _against(model, ks, inputs_batched, params, inputs, ref_params, ref_inputs, ranking):
    ref = rank_users(score_function(model, {**ref_params, **ref_inputs}), ranking, ks)
    stability = lambda score_all: _user_mean(rank_users(score_all, ranking, ks, ref).metrics, ranking.mask)  # noqa: E731
    return for_each_member(model, stability, params, inputs, inputs_batched)


def against_reference(
    model,
    params,
    inputs: dict,
    reference_params,
    reference_inputs: dict,
    ranking: RankingData,
    ks: Sequence[int] = (20,),
    inputs_batched: bool = False,
) -> list[dict]:
    """Metrics and rank stability (``jaccard@K``, ``score_shift@K``) of ``M`` stacked parameter
    sets against one reference model (e.g. victims retrained on noisy data against the clean
    victim), in one vmapped program; one dict per member.

    Args:
      params: ``[M, ...]`` leaves; inputs: shared, or per member when ``inputs_batched``.
      ranking: size its chunk for ``M`` at once (:func:`jaxrec.evaluate.model_chunk` with that width).
    """
    ks = check_ks(ks, model.n_items)
    out = jax.device_get(
        _against(model, ks, inputs_batched, params, inputs, reference_params, reference_inputs, ranking)
    )
    n = next(iter(out.values())).shape[0]
    return [{k: float(v[m]) for k, v in out.items()} for m in range(n)]
