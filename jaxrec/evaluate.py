"""Full-ranking evaluation: Recall / NDCG / Precision / Hit / MRR @K (RecBole's definitions).

For each evaluated user the model scores *every* item, the user's training items (and validation
items when scoring test) are masked out, an exact top-k (:mod:`jaxrec.top_k`) takes the
``max(ks)`` best, and all metrics at all K come from that one ranking. Users are processed in
fixed-size chunks (``lax.map``) so memory is bounded by ``chunk * n_items`` scores whatever the
data-set size.

Definitions (docs/protocols.md, RecBole 1.2.1), ``hit_i`` = 1 when the i-th ranked item is held out:
  hit@K = 1[any hit], precision@K = sum(hit)/K, recall@K = sum(hit)/|T|,
  mrr@K = 1/rank of the first hit (0 if none),
  ndcg@K = sum_i hit_i/log2(i+1) / sum_{i<=min(|T|,K)} 1/log2(i+1).
Averages are over users with at least one held-out item.

The ranking data is an array pytree (:class:`RankingData`) passed as an argument, so the
evaluator can be vmapped over parameters (e.g. a robustness sweep) and over padded data sets.
"""

from __future__ import annotations

from collections.abc import Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.data.ranking import PROTOCOLS as PROTOCOLS  # re-exported: callers find them here
from jaxrec.data.ranking import RankingData as RankingData
from jaxrec.data.ranking import default_chunk as default_chunk
from jaxrec.data.ranking import ranking_data as ranking_data
from jaxrec.data.ranking import sampled_candidates as sampled_candidates
from jaxrec.data.ranking import split_ranking as split_ranking
from jaxrec.errors import JaxrecError
from jaxrec.top_k import top_k

METRICS = ("recall", "ndcg", "precision", "hit", "mrr")


def model_chunk(model, n_items: int, width: int = 1, budget: int = 1 << 24) -> int:
    """Users per ranking chunk for ``model``, the one chunk sizing of every ranking: one chunk of
    ``width`` vmapped rankings (members, strengths x seeds) holds about as many scores as one
    evaluation of :func:`default_chunk`, counting the floats ``score_all`` holds per (user, item)
    pair -- the model's optional ``pair_width`` attribute, 1 when absent (NeuMF's MLP tower holds
    its hidden widths on every pair)."""
    return max(1, default_chunk(n_items * max(1, int(getattr(model, "pair_width", 1))), budget) // max(1, width))


def check_ks(ks: Sequence[int], n_items: int) -> tuple[int, ...]:
    """Validate cut-offs: positive ints no larger than the catalogue."""
    ks = tuple(int(k) for k in ks)
    if not ks:
        raise JaxrecError("give at least one cut-off K")
    for k in ks:
        if k < 1 or k > n_items:
            raise JaxrecError(f"K={k} must be between 1 and the number of items ({n_items})")
    return ks


def metrics_from_hits(hits: jax.Array, n_targets: jax.Array, ks: Sequence[int]) -> dict:
    """Per-user metrics from a ranking's hit matrix.

    Args:
      hits: ``[U, Kmax]`` float, 1 where the i-th ranked item is held out.
      n_targets: ``[U]`` number of held-out items per user (> 0).
    Returns ``{"recall@K": [U], ...}`` for every metric and K.
    """
    kmax = hits.shape[-1]
    pos = jnp.arange(1, kmax + 1, dtype=jnp.float32)
    disc = 1.0 / jnp.log2(pos + 1.0)  # [Kmax]
    cum_hits = jnp.cumsum(hits, axis=-1)
    cum_dcg = jnp.cumsum(hits * disc, axis=-1)
    cum_idcg = jnp.cumsum(disc)
    first = jnp.argmax(hits > 0, axis=-1)  # index of first hit (0 if none)
    any_hit = jnp.cumsum(hits, axis=-1) > 0
    nt = jnp.maximum(n_targets, 1).astype(jnp.float32)
    out = {}
    for k in ks:
        n_hit = cum_hits[:, k - 1]
        ideal = cum_idcg[jnp.minimum(n_targets, k) - 1]
        out[f"recall@{k}"] = n_hit / nt
        out[f"ndcg@{k}"] = cum_dcg[:, k - 1] / ideal
        out[f"precision@{k}"] = n_hit / k
        out[f"hit@{k}"] = any_hit[:, k - 1].astype(jnp.float32)
        out[f"mrr@{k}"] = jnp.where(any_hit[:, k - 1], 1.0 / (first + 1.0), 0.0)
    return out


def rank_top(scores: jax.Array, exclude_rows, exclude_cols, kmax: int) -> tuple[jax.Array, jax.Array]:
    """``scores [C, n_items]`` -> the ``[C, kmax]`` best scores and item ids after masking
    ``(row, col)`` pairs."""
    scores = scores.astype(jnp.float32).at[exclude_rows, exclude_cols].set(-jnp.inf, mode="drop")
    return top_k(kmax)(scores)


@chex.dataclass(frozen=True)
class UserRanking:
    """Every evaluated user's metrics and top list, per chunk (the layout of :class:`RankingData`).

    Attributes:
      metrics: ``{"recall@K": [n_chunks, C], ...}`` per user (padding rows hold garbage: mask them
        with ``RankingData.mask``); with a reference ranking also ``jaccard@K`` (overlap of the
        top-K with the reference's) and ``score_shift@K`` (mean change of the scores of the
        reference's top-K items: this ranking's minus the reference's).
      top: ``[n_chunks, C, Kmax]`` int32 ranked item ids; top_scores: their scores.
      held_out_scores: ``[n_chunks, C, T]`` the scores of the user's held-out items
        (``RankingData.targets``; padding entries hold garbage), e.g. an attacked target item's
        predicted score.
    """

    metrics: dict
    top: jax.Array
    top_scores: jax.Array
    held_out_scores: jax.Array


def rank_users(
    score_all, data: RankingData, ks: Sequence[int], reference: UserRanking | None = None, context: bool = False
) -> UserRanking:
    """The ranking of every user in ``data`` (pure, traceable; ``jax.vmap`` it over parameters
    inside ``score_all``).

    Args:
      score_all: ``users [C] -> scores [C, n_items]`` (a sequence model's: ``queries [C, L] ->``).
      reference: another ranking of the same users (e.g. the clean model's) for rank stability.
      context: call ``score_all(query, users [C], targets [C, T]) -> (scores, extras)`` instead:
        a scorer that depends on the held-out items (an adversary perturbing each user's input
        against them); ``extras`` ``{name: [C]}`` join the per-user metrics.
    """
    kmax = max(ks)

    def one_chunk(c):
        users, er, ec, tgt, nt, ref, queries, cand = c
        query = users if queries is None else queries
        scores, extras = score_all(query, users, tgt) if context else (score_all(query), {})
        if cand is None:
            top_scores, top = rank_top(scores, er, ec, kmax)  # [C, Kmax]
            hits = jnp.any(top[:, :, None] == tgt[:, None, :], axis=-1).astype(jnp.float32)
        else:  # sampled: the held-out item is candidate 0; its rank = candidates scoring above it
            cs = jnp.take_along_axis(scores.astype(jnp.float32), cand, axis=1)  # [C, 1 + n]
            rank = jnp.sum(cs[:, 1:] > cs[:, :1], axis=1)
            hits = (jnp.arange(kmax)[None, :] == rank[:, None]).astype(jnp.float32)
            top_scores, at = top_k(kmax)(cs)
            top = jnp.take_along_axis(cand, at, axis=1)
        per_user = {**metrics_from_hits(hits, nt, ks), **extras}
        if ref is not None:  # items are distinct within a list: |top@k & ref@k| = sum of matches i, j < k
            ref_top, ref_scores = ref
            same = (top[:, :, None] == ref_top[:, None, :]).astype(jnp.int32)  # [C, Kmax, Kmax]
            inter = jnp.cumsum(jnp.cumsum(same, axis=1), axis=2)
            moved = jnp.cumsum(jnp.take_along_axis(scores.astype(jnp.float32), ref_top, axis=1) - ref_scores, axis=1)
            for k in ks:
                n = inter[:, k - 1, k - 1].astype(jnp.float32)
                per_user[f"jaccard@{k}"] = n / (2.0 * k - n)
                per_user[f"score_shift@{k}"] = moved[:, k - 1] / k
        held = jnp.take_along_axis(scores.astype(jnp.float32), jnp.maximum(tgt, 0), axis=1)  # [C, T]
        return per_user, top, top_scores, held

    ref = None if reference is None else (reference.top, reference.top_scores)
    chunks = (
        data.users,
        data.exclude_rows,
        data.exclude_cols,
        data.targets,
        data.n_targets,
        ref,
        data.queries,
        data.candidates,
    )
    metrics, top, top_scores, held = jax.lax.map(one_chunk, chunks)
    return UserRanking(metrics=metrics, top=top, top_scores=top_scores, held_out_scores=held)


def metric_sums(
    score_all, data: RankingData, ks: Sequence[int], reference: UserRanking | None = None
) -> tuple[dict, jax.Array]:
    """Summed per-user metrics (:func:`rank_users`) over all evaluated users, and the user count:
    divide to get means. Pure and traceable."""
    ranking = rank_users(score_all, data, ks, reference)
    return {k: jnp.sum(jnp.where(data.mask, v, 0.0)) for k, v in ranking.metrics.items()}, jnp.sum(data.mask)


def score_function(model, params):
    """``users [C] -> scores [C, n_items]`` of a Recommender under ``params``; the model's final
    embeddings (``embeddings()`` hook, e.g. LightGCN propagation) are computed once, here, and
    reused for every user chunk."""
    cache = model.apply(params, method="embeddings")
    return lambda users: model.apply(params, users, cache, method="score_all")


def evaluate_params(model, params, data: RankingData, ks: Sequence[int] = (10, 20)) -> dict:
    """Mean metrics of a Recommender under ``params`` (jit-compatible, returns device scalars)."""
    return mean_metrics(score_function(model, params), data, ks)


def mean_metrics(score_all, data: RankingData, ks: Sequence[int]) -> dict:
    """Mean per-user metrics (:func:`metric_sums` divided by the user count); pure."""
    sums, n = metric_sums(score_all, data, ks)
    return {k: v / n for k, v in sums.items()}


_evaluate_jit = jax.jit(evaluate_params, static_argnums=(0, 3))


def compile_evaluator(model, params, data: RankingData, ks: Sequence[int] = (10, 20)):
    """Ahead-of-time compiled :func:`evaluate_params` for these shapes.

    Returns ``run(params, data) -> {metric: float}`` (no tracing or compilation left inside, so
    timing it measures ranking alone).
    """
    ks = check_ks(ks, model.n_items)
    signature = jax.tree.map(lambda x: (np.shape(x), str(x.dtype), getattr(x, "sharding", None)), (params, data))
    key = (model, ks, jax.tree.structure((params, data)), tuple(jax.tree.leaves(signature)))
    if key not in _COMPILED:  # one compilation per model, shapes and ks (runs of a session reuse it)
        _COMPILED[key] = _evaluate_jit.lower(model, params, data, ks).compile()
    compiled = _COMPILED[key]
    return lambda p, d: {k: float(v) for k, v in jax.device_get(compiled(p, d)).items()}


_COMPILED: dict = {}


def evaluate(model, params, data: RankingData, ks: Sequence[int] = (10, 20)) -> dict[str, float]:
    """Full-ranking metrics as Python floats (compiled once per model, data shapes and ks)."""
    ks = check_ks(ks, model.n_items)
    out = _evaluate_jit(model, params, data, ks)
    return {k: float(v) for k, v in jax.device_get(out).items()}


def for_each_member(model, fn, params, inputs: dict, inputs_batched: bool = False):
    """``fn(score_all)`` for each of ``M`` stacked parameter sets in one vmap (traceable), where
    ``score_all`` is member m's :func:`score_function`. The one way every members' ranking
    (test metrics, rank stability, target items) is vmapped.

    Args:
      params: ``[M, ...]`` leaves; inputs: the model's non-trainable collections, shared or (when
        ``inputs_batched``) with a leading ``[M]`` axis.
    """
    one = lambda p, i: fn(score_function(model, {**p, **i}))  # noqa: E731
    return jax.vmap(one, in_axes=(0, 0 if inputs_batched else None))(params, inputs)


def _members_metrics(model, params, inputs, data: RankingData, ks: tuple[int, ...], inputs_batched: bool) -> dict:
    return for_each_member(model, lambda score_all: mean_metrics(score_all, data, ks), params, inputs, inputs_batched)


_members_jit = jax.jit(_members_metrics, static_argnums=(0, 4, 5))


def compile_members_evaluator(
    model, params, inputs: dict, data: RankingData, ks: Sequence[int] = (10, 20), inputs_batched: bool = False
):
    """Ahead-of-time compiled full ranking of ``M`` stacked parameter sets in one vmapped program.

    Args:
      params: ``{"params": ...}`` with a leading member axis ``[M, ...]`` on every leaf.
      inputs: the model's non-trainable collections (e.g. the graph), shared by the members, or
        one per member (leading ``[M]`` axis) when ``inputs_batched`` (members trained on data
        variants).
      data: ranking data; size its chunk for the vmapped width (``M * chunk * n_items`` scores).
    Returns ``run(params, inputs, data) -> [{metric: float}] * M`` (compiled once per model,
    shapes and ks, so timing it measures ranking alone).
    """
    ks = check_ks(ks, model.n_items)
    signature = jax.tree.map(
        lambda x: (np.shape(x), str(x.dtype), getattr(x, "sharding", None)), (params, inputs, data)
    )
    key = ("members", model, ks, inputs_batched, jax.tree.structure(signature), tuple(jax.tree.leaves(signature)))
    if key not in _COMPILED:
        _COMPILED[key] = _members_jit.lower(model, params, inputs, data, ks, inputs_batched).compile()
    compiled = _COMPILED[key]

    def run(p, i, d) -> list[dict]:
        out = jax.device_get(compiled(p, i, d))
        n = next(iter(out.values())).shape[0]
        return [{k: float(v[m]) for k, v in out.items()} for m in range(n)]

    return run
