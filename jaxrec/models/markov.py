"""A decayed Markov chain over items: the non-learned sequence recommender that the transition
attack optimizes against (:mod:`jaxrec.attacks.transitions`) and the ``transition`` base of the
certified ensembles (:mod:`jaxrec.robustness.bagging`).

With ``C[i, j]`` the transitions ``i -> j`` between consecutive events of a user's ordered
history, ``n_i = sum_j C[i, j]`` and a user's last ``P`` items ``c_1`` (most recent) ``..
c_P``, the score of item ``j`` is

    s_u(j) = sum_p decay^(p-1) C[c_p, j] / (n_{c_p} + lam),

the first-order chain of FPMC (Rendle et al., WWW 2010) read from the last ``P`` items with
geometric weights instead of from the last one. Counting fits it; no training.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxrec.errors import JaxrecError

MAX_ITEMS = 20_000  #: a chain holds ``n_items x n_items`` float32 counts (1.6 GB at most)


def check_items(n_items: int, what: str) -> None:
    """Refuse a catalogue whose count matrix would not fit (``what`` names the user)."""
    if n_items > MAX_ITEMS:
        raise JaxrecError(
            f"{what} holds an n_items x n_items transition count matrix, and {n_items} items is more than {MAX_ITEMS}"
        )


def transition_pairs(indptr: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(src, dst)`` ``[M]``: every consecutive pair of events within a user's ordered events
    (``indptr [U + 1]``, ``items [N]``: :func:`jaxrec.data.sequences.ordered_items`)."""
    nxt = np.ones(items.size, bool)
    nxt[np.asarray(indptr[1:], np.int64) - 1] = False  # a user's last event has no successor
    src = np.flatnonzero(nxt[: max(items.size - 1, 0)])
    return items[src], items[src + 1]


def transition_counts(indptr: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """``C [n_items, n_items]`` float32 of the module docstring."""
    check_items(n_items, "a Markov chain")
    src, dst = transition_pairs(indptr, items)
    out = np.zeros((n_items, n_items), np.float32)
    np.add.at(out, (src, dst), 1.0)
    return out


def user_transitions(indptr: np.ndarray, items: np.ndarray, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """``(src, dst)`` ``[U, M_max]`` int32: each user's transitions, ``pad`` after its last (a
    subsample's chain is the scatter of its users' rows)."""
    n_users = indptr.size - 1
    per = np.maximum(np.diff(indptr) - 1, 0)
    width = max(int(per.max(initial=0)), 1)
    src = np.full((n_users, width), pad, np.int32)
    dst = np.full((n_users, width), pad, np.int32)
    s, d = transition_pairs(indptr, items)
    rows = np.repeat(np.arange(n_users), per)
    cols = np.arange(rows.size) - np.repeat(np.cumsum(per) - per, per)
    src[rows, cols], dst[rows, cols] = s, d
    return src, dst


def contexts(indptr: np.ndarray, items: np.ndarray, users: np.ndarray, order: int, pad: int) -> np.ndarray:
    """``[len(users), order]`` int32: each user's last ``order`` items, most recent first
    (``pad`` where the history is shorter)."""
    out = np.full((users.size, order), pad, np.int32)
    ends = indptr[users + 1]
    for p in range(order):
        pos = ends - 1 - p
        ok = pos >= indptr[users]
        out[ok, p] = items[pos[ok]]
    return out


def chain_scores(table, ctx, decay: float, lam: float):
    """``s [U, n_items]`` of the module docstring: ``table [n_items + 1, n_items]`` transition
    counts (a last all-zero row for the padding context), ``ctx [U, P]``."""
    rows = table[ctx] / (jnp.sum(table, axis=1)[ctx] + lam)[..., None]  # [U, P, n_items]
    w = decay ** jnp.arange(ctx.shape[1], dtype=jnp.float32)
    return jnp.einsum("p,upi->ui", w, rows)
