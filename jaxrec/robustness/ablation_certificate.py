"""The certificate of the randomized-ablation recommender (:mod:`jaxrec.robustness.ablation`)
against the substitution of up to ``r`` items of a user's history (profile pollution,
:mod:`jaxrec.robustness.pollution`). Levine & Feizi, "Robustness Certificates for Sparse
Adversarial Attacks by Randomized Ablation" (AAAI 2020), in the top-N form of PORE (Jia et al.,
USENIX Security 2023).

**Why.** Let ``p_i`` be the probability that a vote puts item ``i`` in its base's top ``N'``, over
the random subset. Substitute ``r`` items of the window (any items, anywhere): at most ``r`` of the
``n_u`` positions a vote draws from change (``n_u`` is invariant: a substitution keeps the real
positions). A vote whose subset avoids them shows its base the same window, so it is the same
vote. The subset touches one with probability

``delta_r = 1 - C(n_u - r, m_u) / C(n_u, m_u)``

(:func:`ablation_delta`; ``r`` above ``n_u`` counts as ``n_u``), and every probability moves by
at most ``delta_r``: ``p'_i >= p_i - delta_r`` and ``p'_j <= p_j + delta_r``.

**The bound.** ``p`` is bounded at confidence ``1 - alpha`` by one-sided Clopper-Pearson bounds
(:func:`jaxrec.robustness.certificate.vote_bounds`), each at ``alpha / (2 * n_items)``: a
Bonferroni correction over the lower and the upper bound of every item of the user's catalogue,
so all of one user's bounds hold together at ``1 - alpha``. Under any ``r`` substitutions, a rival
``j`` can only rank at or above ``i`` if ``upper_j + delta_r >= lower_i - delta_r``; so

``rank_r(i) <= #{j : upper_j >= lower_i - 2 delta_r - 1e-12}``

(``i`` itself counted, its own ``upper >= lower``; ties count against ``i``, and the ``1e-12`` keeps
a float tie from certifying). Item ``i`` stays in the top-``N`` under every substitution of
``<= r`` items when that rank bound is ``<= N``, i.e. when its lower bound minus ``delta_r``
exceeds the ``N``-th largest upper bound among the other items plus ``delta_r``.
:func:`certify_ablation` gives the smoothed top-``N`` of every user (by vote counts, ties: the
lower id), the certified radius of each of its items (the largest ``r`` that passes; ``-1``: not
even ``r = 0``), and the rank bound of the held-out item at every ``r``. :func:`certified_curve`
turns that into certified HR@N and NDCG@N against ``r`` (the held-out item certified in the
top-``N``; NDCG at its worst certified rank), and :func:`smoothed_metrics` gives the smoothed
recommender's clean HR@N and NDCG@N. The statement is about the smoothed recommender with exact
vote probabilities, which the count-ordered list estimates (PORE's and Cohen et al.'s convention).
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from jaxrec.robustness.certificate import vote_bounds

MARGIN = 1e-12  #: a certified item beats the rivals' bound by more than this (float ties fail)


@functools.cache
def _delta_row(n_u: int, m_u: int, max_radius: int) -> tuple[float, ...]:
    total = math.comb(n_u, m_u)
    return tuple(float(1 - Fraction(math.comb(n_u - min(r, n_u), m_u), total)) for r in range(max_radius + 1))


def ablation_delta(lengths, keep: int, last: int, max_radius: int) -> np.ndarray:
    """``[U, R + 1]`` float64: ``delta_r`` for ``r = 0..R`` of every user, from ``lengths [U]``
    (its real items ``l``; ``n_u = min(n, l)``, ``m_u = min(m, n_u)``), exact up to the final
    rounding."""
    lengths = np.atleast_1d(np.asarray(lengths, np.int64))
    n_u = np.minimum(lengths, last)
    m_u = np.minimum(keep, n_u)
    return np.array([_delta_row(int(a), int(b), max_radius) for a, b in zip(n_u, m_u)], np.float64).reshape(
        lengths.size, max_radius + 1
    )


def rank_bounds(lower: np.ndarray, upper: np.ndarray, items: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """``[U, K, R + 1]`` int: the worst rank of ``items [U, K]`` (``-1``: none, rank 0) under any
    ``r`` substitutions, from bounds ``lower, upper [U, I]`` of the vote probabilities (equal for
    exact ones) and ``delta [U, R + 1]`` (see the module docstring)."""
    lower, upper = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
    items = np.asarray(items, np.int64)
    out = np.zeros(items.shape + (delta.shape[1],), np.int64)
    n_items = upper.shape[1]
    for u in range(items.shape[0]):
        ok = items[u] >= 0
        if not ok.any():
            continue
        ups = np.sort(upper[u])
        thr = lower[u, items[u, ok]][:, None] - 2.0 * delta[u][None, :] - MARGIN  # [K, R + 1]
        out[u, ok] = n_items - np.searchsorted(ups, thr, side="left")  # uppers >= thr, the item included
    return out


class AblationCertificate(NamedTuple):
    """What :func:`certify_ablation` certified, per user.

    Attributes:
      top: ``[U, N]`` the smoothed top-``N`` by vote counts (ties: the lower id).
      radius: ``[U, N]`` the certified radius of each (``-1``: not certified even at ``r = 0``).
      held_rank: ``[U, R + 1]`` the held-out item's worst certified rank at ``r = 0..R`` (0: no
        held-out item).
      delta: ``[U, R + 1]`` ``delta_r`` of each user.
    """

    top: np.ndarray
    radius: np.ndarray
    held_rank: np.ndarray
    delta: np.ndarray


def smoothed_top(counts: np.ndarray, top_n: int) -> np.ndarray:
    """``[U, N]`` the most-voted items (ties: the lower id)."""
    return np.argsort(-np.asarray(counts, np.int64), axis=1, kind="stable")[:, :top_n]


def radii(ranks: np.ndarray, top_n: int) -> np.ndarray:
    """``[..., R + 1]`` rank bounds -> ``[...]`` the largest ``r`` with rank ``<= N`` (``-1``:
    none; the bound only grows with ``r``)."""
    return np.sum(ranks <= top_n, axis=-1) - 1


def certify_ablation(
    counts: np.ndarray,
    total: int,
    lengths: np.ndarray,
    *,
    keep: int,
    last: int,
    top_n: int,
    alpha: float,
    max_radius: int,
    held: np.ndarray | None = None,
    tests: int | None = None,
) -> AblationCertificate:
    """The certificate from vote counts.

    Args:
      counts: ``[U, I]`` votes of ``total`` (T) votes per user (:func:`jaxrec.robustness.ablation.ablation_votes`).
      lengths: ``[U]`` real items of each user's window. keep, last: ``m`` and ``n``.
      top_n: ``N``. alpha: ``1 - confidence``. max_radius: certify ``r = 0..R``.
      held: ``[U]`` the held-out item (``-1``: none). tests: the Bonferroni count (default
        ``2 * I``: both bounds of every item, simultaneous per user at ``1 - alpha``).
    """
    counts = np.asarray(counts, np.int64)
    U, n_items = counts.shape
    lower, upper = vote_bounds(counts, total, alpha, tests or 2 * n_items)
    delta = ablation_delta(lengths, keep, last, max_radius)
    top = smoothed_top(counts, top_n)
    radius = radii(rank_bounds(lower, upper, top, delta), top_n)
    held = np.full(U, -1, np.int64) if held is None else np.asarray(held, np.int64)
    held_rank = rank_bounds(lower, upper, held[:, None], delta)[:, 0]
    return AblationCertificate(top, radius, held_rank, delta)


def certified_curve(held_rank: np.ndarray, top_n: int) -> dict[str, np.ndarray]:
    """Certified ``hit@N`` and ``ndcg@N`` against ``r`` (``[R + 1]`` each): the mean over the
    users with a held-out item (rank bound ``> 0``) of "certified in the top-``N``" and of
    ``1 / log2(1 + worst rank)`` when it is."""
    users = held_rank[:, 0] > 0
    rank = held_rank[users]
    inside = rank <= top_n
    gain = np.where(inside, 1.0 / np.log2(1.0 + np.maximum(rank, 1)), 0.0)
    return {f"hit@{top_n}": inside.mean(axis=0), f"ndcg@{top_n}": gain.mean(axis=0)}


def smoothed_metrics(counts: np.ndarray, held: np.ndarray, top_n: int) -> dict[str, float]:
    """The smoothed recommender's clean ``hit@N`` and ``ndcg@N`` over the users with a held-out
    item: its rank among the vote counts (ties: the lower id)."""
    counts, held = np.asarray(counts, np.int64), np.asarray(held, np.int64)
    users = np.flatnonzero(held >= 0)
    c = counts[users]
    mine = c[np.arange(users.size), held[users]][:, None]
    ids = np.arange(c.shape[1])[None]
    rank = 1 + np.sum((c > mine) | ((c == mine) & (ids < held[users, None])), axis=1)
    inside = rank <= top_n
    return {
        f"hit@{top_n}": float(inside.mean()),
        f"ndcg@{top_n}": float(np.where(inside, 1.0 / np.log2(1.0 + rank), 0.0).mean()),
    }
