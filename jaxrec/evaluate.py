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

import math
from collections.abc import Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.data.interactions import Interactions, Split
from jaxrec.data.sequences import histories, split_order
from jaxrec.errors import JaxrecError
from jaxrec.top_k import top_k

METRICS = ("recall", "ndcg", "precision", "hit", "mrr")


@chex.dataclass(frozen=True)
class RankingData:
    """Users to rank, their masked items and their held-out items, chunked.

    Attributes:
      users: ``[n_chunks, C]`` int32 user ids (padding rows repeat user 0, with ``mask`` False).
      mask: ``[n_chunks, C]`` bool, real rows (not padding).
      exclude_rows, exclude_cols: ``[n_chunks, E]`` int32 (row in chunk, item) to mask out;
        padding entries have ``col == n_items`` and are dropped.
      targets: ``[n_chunks, C, T]`` int32 held-out items per user, padded with ``-1``.
      n_targets: ``[n_chunks, C]`` int32 ``|T|`` per user (0 on padding rows).
      queries: ``[n_chunks, C, L]`` int32 history windows, the query of a sequence model
        (:mod:`jaxrec.models.sequential`); None: the query is the user id.
      candidates: ``[n_chunks, C, 1 + n]`` int32 (sampled protocol): the held-out item, then
        ``n`` sampled items; the user's rank is the number of them scoring above the held-out
        item (ties count for it) and no item is masked. None: full ranking.
    """

    users: jax.Array
    mask: jax.Array
    exclude_rows: jax.Array
    exclude_cols: jax.Array
    targets: jax.Array
    n_targets: jax.Array
    queries: jax.Array | None = None
    candidates: jax.Array | None = None

    @property
    def n_users(self) -> int:
        """Number of evaluated users (host value)."""
        return int(np.asarray(self.mask).sum())


def default_chunk(n_items: int, budget: int = 1 << 24) -> int:
    """Users per chunk so one chunk holds about ``budget`` scores (16M floats = 64 MB)."""
    return int(max(1, min(4096, budget // max(n_items, 1))))


def model_chunk(model, n_items: int, width: int = 1, budget: int = 1 << 24) -> int:
    """Users per ranking chunk for ``model``, the one chunk sizing of every ranking: one chunk of
    ``width`` vmapped rankings (members, strengths x seeds) holds about as many scores as one
    evaluation of :func:`default_chunk`, counting the floats ``score_all`` holds per (user, item)
    pair -- the model's optional ``pair_width`` attribute, 1 when absent (NeuMF's MLP tower holds
    its hidden widths on every pair)."""
    return max(1, default_chunk(n_items * max(1, int(getattr(model, "pair_width", 1))), budget) // max(1, width))


def ranking_data(
    targets: Interactions,
    exclude: Sequence[Interactions] = (),
    chunk: int | None = None,
    queries: np.ndarray | None = None,
    candidates: np.ndarray | None = None,
    users: np.ndarray | None = None,
) -> RankingData:
    """Build :class:`RankingData` for the users that have at least one item in ``targets``.

    Args:
      targets: held-out interactions (e.g. ``split.test``).
      exclude: interactions to mask out of the ranking (e.g. ``[split.train, split.valid]``).
      chunk: users per chunk; default from :func:`default_chunk`.
      queries: ``[n_users, L]`` each user's history window (sequence models).
      candidates: ``[n_users, 1 + n]`` each user's sampled-protocol items (:func:`sampled_candidates`).
      users: evaluate only these users (of those with a held-out item); default all.
    """
    n_users, n_items = targets.n_users, targets.n_items
    for e in exclude:
        if (e.n_users, e.n_items) != (n_users, n_items):
            raise JaxrecError(f"{e.source}: id space differs from {targets.source}")
    t_ptr, t_idx = targets.csr()
    has = np.diff(t_ptr) > 0
    if users is not None:
        has &= np.isin(np.arange(n_users), users)
    users = np.flatnonzero(has).astype(np.int32)
    if users.size == 0:
        raise JaxrecError(f"{targets.source}: no user has a held-out item to evaluate")
    chunk = default_chunk(n_items) if chunk is None else int(chunk)
    chunk = max(1, min(chunk, users.size))
    n_chunks = math.ceil(users.size / chunk)
    pad = n_chunks * chunk - users.size
    mask = np.concatenate([np.ones(users.size, bool), np.zeros(pad, bool)])
    users_p = np.concatenate([users, np.zeros(pad, np.int32)])

    # held-out items, rectangular [U, T]
    deg = np.diff(t_ptr)[users_p] * mask
    t_max = int(deg.max())
    tgt = np.full((users_p.size, t_max), -1, np.int32)
    rows = np.repeat(np.arange(users_p.size), deg)
    cols = np.arange(rows.size) - np.repeat(np.cumsum(deg) - deg, deg)
    starts = np.repeat(t_ptr[users_p], deg)
    tgt[rows, cols] = t_idx[starts + cols]

    # masked items, COO per chunk padded to the largest chunk
    pos_in_eval = np.full(n_users, -1, np.int64)
    pos_in_eval[users] = np.arange(users.size)
    ex_r, ex_c = [], []
    for e in exclude:
        keep = pos_in_eval[e.users] >= 0
        ex_r.append(pos_in_eval[e.users[keep]])
        ex_c.append(e.items[keep])
    ex_r = np.concatenate(ex_r) if ex_r else np.zeros(0, np.int64)
    ex_c = np.concatenate(ex_c) if ex_c else np.zeros(0, np.int32)
    order = np.argsort(ex_r, kind="stable")
    ex_r, ex_c = ex_r[order], ex_c[order]
    ex_chunk = ex_r // chunk
    counts = np.bincount(ex_chunk, minlength=n_chunks)
    e_max = max(1, int(counts.max()) if counts.size else 1)
    exclude_rows = np.zeros((n_chunks, e_max), np.int32)
    exclude_cols = np.full((n_chunks, e_max), n_items, np.int32)
    slot = np.arange(ex_r.size) - np.repeat(np.cumsum(counts) - counts, counts)
    exclude_rows[ex_chunk, slot] = ex_r % chunk
    exclude_cols[ex_chunk, slot] = ex_c

    return RankingData(
        users=jnp.asarray(users_p.reshape(n_chunks, chunk)),
        mask=jnp.asarray(mask.reshape(n_chunks, chunk)),
        exclude_rows=jnp.asarray(exclude_rows),
        exclude_cols=jnp.asarray(exclude_cols),
        targets=jnp.asarray(tgt.reshape(n_chunks, chunk, t_max)),
        n_targets=jnp.asarray(deg.reshape(n_chunks, chunk).astype(np.int32)),
        queries=None if queries is None else jnp.asarray(queries[users_p].reshape(n_chunks, chunk, -1), jnp.int32),
        candidates=None
        if candidates is None
        else jnp.asarray(candidates[users_p].reshape(n_chunks, chunk, -1), jnp.int32),
    )


PROTOCOLS = ("full", "sampled")  #: ``eval.protocol``


def split_ranking(
    split: Split,
    part: str = "test",
    chunk: int | None = None,
    *,
    max_len: int | None = None,
    mask_history: bool = True,
    protocol: str = "full",
    negatives: int = 100,
    sample_users: int = 0,
    seed: int = 0,
) -> RankingData:
    """Ranking data for ``split.test`` (the query and the mask: train and validation items) or
    ``split.valid`` (train items).

    ``max_len``: the query of a sequence model -- each user's most recent ``max_len`` events of
    those parts, in the split's event order. ``mask_history=False`` masks nothing (RecBole's
    sequence models). ``protocol="sampled"``: each user's held-out item against ``negatives``
    items drawn uniformly, with replacement, from outside the user's *training* items
    (:func:`sampled_candidates`, the SASRec code's ``evaluate``). ``sample_users``: a seeded
    sample of that many evaluated users (0: all; the SASRec paper samples 10,000)."""
    if part not in ("test", "valid"):
        raise JaxrecError(f"split part must be 'test' or 'valid', got {part!r}")
    if protocol not in PROTOCOLS:
        raise JaxrecError(f"unknown evaluation protocol {protocol!r}; choose one of {PROTOCOLS}")
    if part == "valid" and split.valid is None:
        raise JaxrecError("this split has no validation part (use a split with a valid ratio > 0)")
    held = split.test if part == "test" else split.valid
    before = [split.train] + ([split.valid] if part == "test" and split.valid is not None else [])
    queries = None
    if max_len is not None:
        queries = histories(before, split_order(split), max_len)
    users = None
    if sample_users:
        with_items = np.flatnonzero(held.user_counts() > 0)
        if sample_users < with_items.size:
            users = np.sort(np.random.default_rng(seed).choice(with_items, sample_users, replace=False))
    candidates = None
    if protocol == "sampled":
        candidates = sampled_candidates(split.train, held, negatives, seed)
    return ranking_data(held, before if mask_history else [], chunk, queries, candidates, users)


def sampled_candidates(train: Interactions, held: Interactions, n: int, seed: int = 0) -> np.ndarray:
    """``[n_users, 1 + n]`` int32: each user's (first) held-out item, then ``n`` items drawn
    uniformly, with replacement, among those the user has no training event with (Kang &
    McAuley's ``util.evaluate``: a drawn item may repeat, or be the held-out item itself when
    that is not a training item). Rows of users without a held-out item are unused. Seeded."""
    rng = np.random.default_rng(seed)
    n_items = train.n_items
    t_ptr, t_idx = held.csr()
    if np.any(np.diff(t_ptr) > 1):
        raise JaxrecError(f"{held.source}: the sampled protocol ranks one held-out item per user; some hold several")
    first = np.where(np.diff(t_ptr) > 0, t_idx[np.minimum(t_ptr[:-1], max(t_idx.size - 1, 0))], 0)
    seen = np.unique(train.users.astype(np.int64) * n_items + train.items)
    if np.any(np.bincount(train.users, minlength=train.n_users) >= n_items):
        raise JaxrecError(f"{train.source}: a user has a training event with every item: nothing to sample")
    users = np.repeat(np.arange(train.n_users, dtype=np.int64), n)
    draws = rng.integers(0, n_items, users.size)
    bad = np.isin(users * n_items + draws, seen)
    while bad.any():  # redraw the training items (a user's items are few: this ends fast)
        draws[bad] = rng.integers(0, n_items, int(bad.sum()))
        bad[bad] = np.isin(users[bad] * n_items + draws[bad], seen)
    return np.concatenate([first[:, None], draws.reshape(-1, n)], axis=1).astype(np.int32)


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


def rank_users(score_all, data: RankingData, ks: Sequence[int], reference: UserRanking | None = None) -> UserRanking:
    """The ranking of every user in ``data`` (pure, traceable; ``jax.vmap`` it over parameters
    inside ``score_all``).

    Args:
      score_all: ``users [C] -> scores [C, n_items]``.
      reference: another ranking of the same users (e.g. the clean model's) for rank stability.
    """
    kmax = max(ks)

    def one_chunk(c):
        users, er, ec, tgt, nt, ref, queries, cand = c
        scores = score_all(users if queries is None else queries)
        if cand is None:
            top_scores, top = rank_top(scores, er, ec, kmax)  # [C, Kmax]
            hits = jnp.any(top[:, :, None] == tgt[:, None, :], axis=-1).astype(jnp.float32)
        else:  # sampled: the held-out item is candidate 0; its rank = candidates scoring above it
            cs = jnp.take_along_axis(scores.astype(jnp.float32), cand, axis=1)  # [C, 1 + n]
            rank = jnp.sum(cs[:, 1:] > cs[:, :1], axis=1)
            hits = (jnp.arange(kmax)[None, :] == rank[:, None]).astype(jnp.float32)
            top_scores, at = top_k(kmax)(cs)
            top = jnp.take_along_axis(cand, at, axis=1)
        per_user = metrics_from_hits(hits, nt, ks)
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
