"""Randomized ablation of a user's history: a smoothed sequence recommender whose votes are
aggregated on device (Levine & Feizi, "Robustness Certificates for Sparse Adversarial Attacks by
Randomized Ablation", AAAI 2020; the top-N form as in PORE, Jia et al., USENIX Security 2023).
The certificate is :mod:`jaxrec.robustness.ablation_certificate`.

**What one vote's base sees.** A user's query is the right-aligned window ``[L]`` of the sequence
contract (:mod:`jaxrec.models.sequential`), padded on the left with ``pad = n_items``. Let ``l``
be its real items and ``n_u = min(n, l)`` (``n``: :attr:`Ablation.last`). A vote draws a subset
of ``m_u = min(m, n_u)`` of the ``n_u`` most recent real positions, uniformly among the
``C(n_u, m_u)`` subsets (``m``: :attr:`Ablation.keep`). The base sees those ``m_u`` items and
nothing else: in their original order, right-aligned in a window of width
``W = min(L, m + 1)``, every other slot the padding id. Items older than the last ``n`` are never
seen. The extra slot of ``W`` keeps every kept item in the query of a model whose
``query_window`` drops the oldest slot (BERT4Rec appends its mask token); the contract makes a
narrower window the same computation as the full one (the kept items sit in the last slots).
The base scores the catalogue (``score_all``) and votes for its top ``N'``
(:attr:`Ablation.n_votes`; ties: the lower id). Nothing of the user's history outside the
subset reaches the vote -- no mask of seen items either -- so a vote whose subset avoids the
changed positions is the same vote; that is what the certificate rests on.

**Votes as one program.** ``counts[u, i]`` is the number of the ``T`` votes (:attr:`Ablation.votes`)
that put ``i`` in the base's top ``N'`` for ``u``. Per chunk of ``C`` users, one compiled program
scans over the votes and adds to one ``[C, n_items]`` int32 table: memory is bounded by the
chunk, not by ``T``. ``block = V > 1`` vmaps ``V`` votes per scan step (``V * C`` windows scored
at once, memory ``V * C * n_items`` scores; :func:`auto_block`), for accelerators. A last,
partial block's extra votes and the padding rows of a chunk count nothing. Vote ``t`` of user
``u`` draws from ``fold_in(fold_in(key, u), t)`` (a typed key), so the subsets do not depend on
the chunk, the block or the order. With ``block = 1`` (the default) every vote is scored by the
same computation as in :func:`loop_votes` (a Python loop over the votes, one compiled call each),
and the counts are equal. With ``block > 1`` the batched score product may round a near-tie at the
``N'``-th item differently (measured: 2 of 80,000 vote slots of a random-init SASRec on
ml-100k's catalogue). :func:`exact_votes` enumerates every subset (tiny ``n``) for exact vote
probabilities.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.errors import JaxrecError
from jaxrec.top_k import top_k

#: ``score(variables, windows [B, W]) -> [B, n_items]``: a base recommender on ablated windows
Scorer = Callable[[object, jax.Array], jax.Array]


class Ablation(NamedTuple):
    """The smoothed recommender's static settings (see the module docstring)."""

    keep: int  #: m, the history items each vote's base sees
    last: int  #: n, the most recent real items a vote draws from
    votes: int = 1000  #: T, votes per user
    n_votes: int = 10  #: N', the items each vote's base recommends


def check_ablation(spec: Ablation, n_items: int, max_len: int) -> None:
    """Each mistake one line before any work: ``1 <= m < n <= max_len``, ``T >= 1`` and
    ``1 <= N' <= n_items``."""
    if not 1 <= spec.keep < spec.last:
        raise JaxrecError(
            f"ablation keep (m={spec.keep}) must be between 1 and last - 1 (n={spec.last}): "
            "with m >= n every vote sees the whole history and nothing is certified"
        )
    if spec.last > max_len:
        raise JaxrecError(f"ablation last (n={spec.last}) must be at most the model's max_len ({max_len})")
    if spec.votes < 1:
        raise JaxrecError(f"ablation votes (T={spec.votes}) must be at least 1")
    if not 1 <= spec.n_votes <= n_items:
        raise JaxrecError(f"ablation n_votes (N'={spec.n_votes}) must be between 1 and {n_items} (the catalogue)")


def width(spec: Ablation, max_len: int) -> int:
    """``W = min(L, m + 1)``: the width of the window a vote's base sees."""
    return min(max_len, spec.keep + 1)


def eligible(window: jax.Array, pad: int, last: int) -> jax.Array:
    """``window [..., L]`` -> ``[..., L]`` bool: the ``min(n, l)`` most recent real positions."""
    real = window != pad
    from_right = jnp.cumsum(real[..., ::-1], axis=-1)[..., ::-1]  # real items at or after each slot
    return real & (from_right <= last)


def ablate(window: jax.Array, kept: jax.Array, pad: int, size: int) -> jax.Array:
    """``window [L]``, ``kept [L]`` bool -> ``[size]``: the kept items in their order,
    right-aligned, every other slot ``pad`` (the last ``size`` slots of the compacted window)."""
    L = window.shape[-1]
    order = jnp.argsort(kept.astype(jnp.int32), stable=True)  # the kept slots last, in order
    n_kept = jnp.sum(kept)
    out = jnp.where(jnp.arange(L) >= L - n_kept, window[order], pad)
    return out[L - size :]


def draw_kept(key: jax.Array, window: jax.Array, pad: int, spec: Ablation) -> jax.Array:
    """``window [L]`` -> ``[L]`` bool: a uniform ``m_u``-subset of the eligible positions."""
    ok = eligible(window, pad, spec.last)
    noise = jnp.where(ok, jax.random.uniform(key, window.shape), 2.0)
    _, first = jax.lax.top_k(-noise, min(spec.keep, window.shape[-1]))  # the m smallest draws
    return jnp.zeros(window.shape, bool).at[first].set(True) & ok


def ablated_windows(windows: jax.Array, users: jax.Array, key: jax.Array, t: jax.Array, spec: Ablation, pad: int):
    """``windows [C, L]``, ``users [C]`` -> ``[C, W]``: what vote ``t`` shows each user's base."""
    size = width(spec, windows.shape[-1])

    def one(window, user):
        k = jax.random.fold_in(jax.random.fold_in(key, user), t)
        return ablate(window, draw_kept(k, window, pad, spec), pad, size)

    return jax.vmap(one)(windows, users)


def _vote_block(score: Scorer, variables, windows, users, valid, key, ts, spec: Ablation, pad: int, counts):
    """``counts [C, n_items]`` plus the votes ``ts [V]`` (those ``>= T`` count nothing) of the
    users whose ``valid [C]`` is set."""
    seen = jax.vmap(lambda t: ablated_windows(windows, users, key, t, spec, pad))(ts)  # [V, C, W]
    V, C, W = seen.shape
    scores = score(variables, seen.reshape(V * C, W)).astype(jnp.float32)
    top = top_k(spec.n_votes)(scores)[1].reshape(V, C, spec.n_votes)
    weight = ((ts < spec.votes)[:, None] & valid[None, :]).astype(counts.dtype)  # [V, C]
    rows = jnp.broadcast_to(jnp.arange(C)[None, :, None], top.shape)
    return counts.at[rows, top].add(jnp.broadcast_to(weight[:, :, None], top.shape))


@functools.partial(jax.jit, static_argnames=("score", "spec", "block", "n_items"))
def chunk_votes(score: Scorer, variables, windows, users, valid, key, *, spec: Ablation, block: int, n_items: int):
    """``[C, n_items]`` int32: the ``T`` votes of a chunk's users, one program (a ``lax.scan``
    over ``ceil(T / V)`` blocks of ``V = block`` vmapped votes).

    Args:
      score: the base (static, hashable; :func:`sequence_scorer`). variables: its variables.
      windows: ``[C, L]`` int32 query windows (padding ``n_items``). users: ``[C]`` int32 ids
        (the random stream of each user). valid: ``[C]`` bool, real rows. key: a typed key.
    """
    counts = jnp.zeros((windows.shape[0], n_items), jnp.int32)
    blocks = jnp.arange(-(-spec.votes // block) * block, dtype=jnp.int32).reshape(-1, block)

    def step(c, ts):
        return _vote_block(score, variables, windows, users, valid, key, ts, spec, n_items, c), None

    return jax.lax.scan(step, counts, blocks)[0]


@functools.partial(jax.jit, static_argnames=("score", "spec", "n_items"), donate_argnums=0)
def _one_vote(counts, score: Scorer, variables, windows, users, valid, key, t, *, spec: Ablation, n_items: int):
    return _vote_block(score, variables, windows, users, valid, key, t[None], spec, n_items, counts)


def loop_votes(
    score: Scorer, variables, windows, users, valid, key, *, spec: Ablation, n_items: int, ts: range | None = None
) -> jax.Array:
    """:func:`chunk_votes` as a Python loop over the votes ``ts`` (default: all ``T``), one
    compiled call each (the reference the one program is measured and tested against)."""
    counts = jnp.zeros((windows.shape[0], n_items), jnp.int32)
    for t in range(spec.votes) if ts is None else ts:
        counts = _one_vote(
            counts, score, variables, windows, users, valid, key, jnp.int32(t), spec=spec, n_items=n_items
        )
    return counts


def auto_block(chunk: int, n_items: int, votes: int, budget: int = 1 << 24) -> int:
    """Votes per block: at most ``budget`` scores (``V * C * n_items``) at once, at most ``T``."""
    return int(max(1, min(votes, budget // max(1, chunk * n_items))))


def check_key(key: jax.Array) -> None:
    if not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        raise JaxrecError("ablation votes take a typed key (jax.random.key), not a raw uint32 key")


def ablation_votes(
    score: Scorer,
    variables,
    windows,
    users,
    key: jax.Array,
    spec: Ablation,
    *,
    n_items: int,
    chunk: int = 256,
    block: int = 1,
    loop: bool = False,
) -> np.ndarray:
    """``[U, n_items]`` int32 vote counts of every user, ``chunk`` users per compiled call (every
    call the same shape: one compilation; a last chunk padded with rows that count nothing).

    Args:
      windows: ``[U, L]`` query windows (the sequence contract's ``history``). users: ``[U]`` ids
        (each user's random stream: the same id gives the same votes in any chunk).
      block: votes vmapped per scan step (0: :func:`auto_block`; see the module docstring).
      loop: a Python loop over the votes (:func:`loop_votes`) instead of the one program (the
        same counts with ``block = 1``; for measuring).
    """
    check_key(key)
    check_ablation(spec, n_items, np.shape(windows)[-1])
    windows, users = np.asarray(windows, np.int32), np.asarray(users, np.int32)
    U = windows.shape[0]
    C = max(1, min(chunk, U))
    block = block or auto_block(C, n_items, spec.votes)
    out = np.zeros((U, n_items), np.int32)
    for start in range(0, U, C):
        stop = min(U, start + C)
        w = np.full((C, windows.shape[1]), n_items, np.int32)
        u = np.zeros(C, np.int32)
        w[: stop - start], u[: stop - start] = windows[start:stop], users[start:stop]
        valid = np.arange(C) < stop - start
        if loop:
            got = loop_votes(score, variables, w, u, valid, key, spec=spec, n_items=n_items)
        else:
            got = chunk_votes(score, variables, w, u, valid, key, spec=spec, block=block, n_items=n_items)
        out[start:stop] = np.asarray(got)[: stop - start]
    return out


@functools.cache
def sequence_scorer(model) -> Scorer:
    """The base of a sequence model: ``score_all`` of the ablated window (the model's own
    ``query_window`` applied, e.g. BERT4Rec's mask token)."""

    def score(variables, windows):
        return model.apply(variables, windows, method="score_all")

    return score


def real_lengths(windows, pad: int) -> np.ndarray:
    """``[U]`` the real items of each window."""
    return np.sum(np.asarray(windows) != pad, axis=-1)


def subsets(window: np.ndarray, pad: int, spec: Ablation) -> np.ndarray:
    """``[C(n_u, m_u), L]`` bool: every subset a vote may draw for ``window [L]``, as kept masks."""
    ok = np.flatnonzero(np.asarray(eligible(jnp.asarray(window), pad, spec.last)))
    m_u = min(spec.keep, ok.size)
    out = np.zeros((math.comb(ok.size, m_u), window.shape[-1]), bool)
    for s, combo in enumerate(itertools.combinations(ok, m_u)):
        out[s, list(combo)] = True
    return out


def exact_votes(score: Scorer, variables, windows: np.ndarray, spec: Ablation, n_items: int) -> tuple[np.ndarray, int]:
    """``([P, n_items] int64, S)``: the votes of every one of the ``S = C(n_u, m_u)`` subsets of
    each window ``[P, L]`` (the windows share their real positions, e.g. one window and its
    substitutions), so ``counts / S`` are the exact vote probabilities. For tiny ``n`` only."""
    windows = np.asarray(windows, np.int32)
    kept = subsets(windows[0], n_items, spec)  # [S, L]
    size = width(spec, windows.shape[-1])
    counts = _exact_counts(score, variables, windows, kept, spec.n_votes, n_items, size)
    return np.asarray(counts, np.int64), kept.shape[0]


@functools.partial(jax.jit, static_argnames=("score", "n_votes", "n_items", "size"))
def _exact_counts(score: Scorer, variables, windows, kept, n_votes: int, n_items: int, size: int):
    seen = jax.vmap(lambda w: jax.vmap(lambda k: ablate(w, k, n_items, size))(kept))(windows)  # [P, S, W]
    P, S = seen.shape[:2]
    top = top_k(n_votes)(score(variables, seen.reshape(P * S, size)).astype(jnp.float32))[1]
    rows = jnp.broadcast_to(jnp.arange(P)[:, None, None], (P, S, n_votes))
    return jnp.zeros((P, n_items), jnp.int32).at[rows, top.reshape(P, S, n_votes)].add(1)
