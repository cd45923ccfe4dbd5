"""Bagged recommenders: user subsamples, and the votes of base recommenders trained on them,
aggregated on device (PORE, Jia et al., USENIX Security 2023; the certificate is in
:mod:`jaxrec.robustness.certificate`).

A base sees the training data of the ``s`` users of its subsample and recommends its top ``N'``
unseen items to each of them. ``votes[u, i]`` counts the bases that recommended ``i`` to ``u``.
A user is outside most subsamples, so its votes sum to about ``T * s / n * N'``. Two kinds of
base:

* :func:`item_votes` -- item-based (non-learned, PORE's "SAR" base without its time decay):
  Jaccard similarity of items over the subsample's users,
  ``J_ij = C_ij / (C_ii + C_jj - C_ij)`` with ``C = X_S^T X_S``. A user's score for an item is
  ``x_u J``, the sum of its similarities to the user's items.
* :func:`transition_votes` -- a sequence base that needs no training: the decayed Markov chain
  of :mod:`jaxrec.models.markov` counted over the subsample's users' ordered histories, each
  user scored from its own last items.
* :func:`model_votes` -- a trained recommender per subsample (e.g. MF-BPR, or SASRec: a
  sequence model scores its users' history windows). The sub-models train as members of one
  compiled program (:func:`jaxrec.experiment.training.train_members` with one data variant per
  member). Here their parameters, stacked on a member axis, score their users.

Both loop over the members of a chunk inside one program (``lax.scan``) and add to one
``[n_users, n_items]`` int32 count table. A chunk's padding members (index ``-1`` users) vote
for nothing.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.data.interactions import Split
from jaxrec.models.markov import chain_scores
from jaxrec.top_k import top_k

#: item-based (:func:`item_votes`) | a trained recommender (:func:`model_votes`) | a Markov chain
#: over the histories (:func:`transition_votes`) | ``ablation``: not a bagged base, the
#: randomized-ablation recommender certified against pollution (:mod:`jaxrec.robustness.ablation`)
BASES = ("item", "model", "transition", "ablation")


def pairs_mask(split: Split, parts: tuple[str, ...] = ("train", "valid")) -> np.ndarray:
    """``[n_users, n_items]`` bool: the (user, item) pairs of the split's ``parts``. The default
    is the items a user never gets recommended (training and validation)."""
    mask = np.zeros((split.n_users, split.n_items), bool)
    for part in (getattr(split, p) for p in parts):
        if part is not None:
            mask[part.users, part.items] = True
    return mask


def draw_subsets(n_users: int, size: int, count: int, seed: int, chunk: int = 0) -> np.ndarray:
    """``[count, size]`` int32: ``count`` samples of ``size`` users drawn without replacement,
    each sorted. A chunk has its own seeded stream (``(seed, chunk)``), so any chunk can be redrawn
    alone."""
    rng = np.random.default_rng([seed, chunk])
    picks = np.argpartition(rng.random((count, n_users)), size - 1, axis=1)[:, :size]
    return np.sort(picks, axis=1).astype(np.int32)


def _add_votes(votes: jax.Array, users: jax.Array, top: jax.Array) -> jax.Array:
    """``votes`` plus one vote per ``(users[j], top[j, k])``; rows with ``users < 0`` are padding."""
    rows = jnp.where(users < 0, votes.shape[0], users)  # out of range: dropped
    return votes.at[rows[:, None], top].add(1, mode="drop")


def _unseen_top(scores: jax.Array, seen: jax.Array, n_votes: int) -> jax.Array:
    """``[s, N']``: each row's ``N'`` best unseen items (ties: the lower id)."""
    return top_k(n_votes)(jnp.where(seen, -jnp.inf, scores))[1]


def item_scores(matrix: jax.Array, users: jax.Array) -> jax.Array:
    """``[s, n_items]``: the item-based base of the subsample ``users [s]`` (``-1``: padding)
    scoring its users, ``x_u J`` with ``J`` the items' Jaccard similarity over the subsample."""
    x = matrix[jnp.maximum(users, 0)] * (users >= 0)[:, None]  # [s, I]
    co = x.T @ x  # [I, I] co-occurrence counts
    d = jnp.diag(co)
    return x @ (co / jnp.maximum(d[:, None] + d[None, :] - co, 1.0))


@functools.partial(jax.jit, static_argnames="n_votes", donate_argnums=0)
def item_votes(votes: jax.Array, matrix: jax.Array, seen: jax.Array, subsets: jax.Array, n_votes: int) -> jax.Array:
    """``votes`` plus the item-based bases' votes.

    Args:
      votes: ``[n_users, n_items]`` int32, donated; matrix: ``[n_users, n_items]`` float32, the
        training interactions (0/1); seen: ``[n_users, n_items]`` bool, the items a user is never
        recommended (training and validation); subsets: ``[M, s]`` int32, one row per base (a
        padding row is all ``-1``).
    """

    def one(v, users):
        top = _unseen_top(item_scores(matrix, users), seen[jnp.maximum(users, 0)], n_votes)
        return _add_votes(v, users, top), None

    return jax.lax.scan(one, votes, subsets)[0]


@functools.partial(jax.jit, static_argnames=("n_votes", "decay", "lam"), donate_argnums=0)
def transition_votes(
    votes: jax.Array,
    src: jax.Array,
    dst: jax.Array,
    ctx: jax.Array,
    seen: jax.Array,
    subsets: jax.Array,
    n_votes: int,
    decay: float = 0.5,
    lam: float = 1.0,
) -> jax.Array:
    """``votes`` plus the Markov-chain bases' votes.

    Args:
      src, dst: ``[n_users, M]`` int32 each user's transitions (padding ``n_items``:
        :func:`jaxrec.models.markov.user_transitions`); ctx: ``[n_users, P]`` each user's last
        items at test time (:func:`jaxrec.models.markov.contexts`); seen, subsets: as in
        :func:`item_votes`.
    """
    n_items = seen.shape[1]

    def one(v, users):
        safe = jnp.maximum(users, 0)
        live = (users >= 0)[:, None]
        s, d = jnp.where(live, src[safe], n_items), jnp.where(live, dst[safe], n_items)
        table = jnp.zeros((n_items + 1, n_items + 1), jnp.float32).at[s, d].add(1.0)[:, :n_items]
        scores = chain_scores(table, ctx[safe], decay, lam)
        return _add_votes(v, users, _unseen_top(scores, seen[safe], n_votes)), None

    return jax.lax.scan(one, votes, subsets)[0]


@functools.partial(jax.jit, static_argnames=("model", "n_votes", "batched"), donate_argnums=0)
def model_votes(
    votes: jax.Array,
    model,
    params,
    inputs,
    seen: jax.Array,
    subsets: jax.Array,
    n_votes: int,
    batched: bool = False,
    queries: jax.Array | None = None,
) -> jax.Array:
    """``votes`` plus the votes of trained bases, one per member.

    Args:
      model: the Recommender (static). params: its parameters with a leading member axis
        ``[M, ...]``. inputs: the model's data inputs, with a member axis when ``batched``.
      seen, subsets: as in :func:`item_votes`; subset ``m`` is the data member ``m`` trained on.
      queries: ``[n_users, L]`` a sequence model's history windows (None: user ids).
    """

    def one(v, xs):
        p, i, users = xs
        variables = {**p, **(i if batched else inputs)}
        cache = model.apply(variables, method="embeddings")
        safe = jnp.maximum(users, 0)
        query = safe if queries is None else queries[safe]
        scores = model.apply(variables, query, cache, method="score_all")  # [s, I]
        return _add_votes(v, users, _unseen_top(scores.astype(jnp.float32), seen[safe], n_votes)), None

    member_inputs = inputs if batched else jnp.zeros(subsets.shape[0])
    return jax.lax.scan(one, votes, (params, member_inputs, subsets))[0]
