"""What the evaluator ranks, as arrays: the users in fixed-size chunks, their masked and held-out
items, a sequence model's history windows and the sampled protocol's items
(:class:`RankingData`), built from a split (:func:`split_ranking`). The ranking itself is
:mod:`jaxrec.evaluate`, which re-exports these."""

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
