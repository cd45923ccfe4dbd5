"""Certified robustness of a bagged recommender against injected fake users (PORE: Jia, Liu, Hu,
Gong, "PORE: Provably Robust Recommender Systems against Data Poisoning Attacks", USENIX
Security 2023).

The ensemble: ``T`` base recommenders, each trained on ``s`` users drawn without replacement from
the ``n`` users. Each recommends its top ``N'`` items to the users of its sample. An item's vote
probability for user ``u`` is ``p_i = Pr(u is drawn and i is in the base's top-N')``, estimated by
``c_i / T`` from the vote counts. The ensemble recommends the ``N`` most-voted unseen items.

``e`` fake users enlarge the pool to ``n + e``. A sample without any fake user, which happens with
probability ``rho_e = C(n, s) / C(n + e, s)``, is a clean sample. Every poisoned probability is
therefore bounded:

* ``p'_i >= rho_e * p_i``;
* ``p'_v <= rho_e * p_v + delta_e``, with ``delta_e = s / (n + e) - rho_e * s / n`` (the chance
  that ``u`` is drawn together with a fake user);
* ``sum_{v in C} p'_v <= rho_e * sum_{v in C} p_v + N' * delta_e``, because a sample votes for
  ``N'`` items.

``p`` itself is bounded at confidence ``1 - alpha``: one-sided Clopper-Pearson bounds, Bonferroni
over every (user, item). An item of ``I_u`` (the user's test items) gets its lower bound, every
other candidate its upper bound. Walking ``I_u`` by decreasing lower bound, item ``mu`` at rank
``R <= N`` stays in the top-``N`` if its lowest poisoned probability beats the highest that the
``L = N - R + 1`` next candidates outside ``I_u`` can reach (their sum shared out, or the
smallest of them). ``r`` is the length of the run of items that pass. PORE's code does the same,
and :func:`certified_counts` reproduces its published curve from its vote files (``docs/certify.md``).

The same bounds cap what an attacker can do for a target item (:func:`target_hr_bound`): the
target cannot enter the top-``N`` of a user for whom ``N`` rivals certainly beat it.

From vote counts, on plain arrays: :func:`certify` (``[U, E]`` certified ``r``),
:func:`target_bound` (the targets' mean HR@N bound), :func:`curve` (certified precision and
recall against ``e``), and :func:`read_reference` (PORE's published vote files). The ensemble
that produces the votes from a config is :mod:`jaxrec.experiment.certified`.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
from scipy import stats

from jaxrec.errors import JaxrecError

_MARGIN = 1e-12  #: a certified item beats its rivals' bound by more than this (float ties fail)


def rho_delta(n: int, s: int, e: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """``rho_e = C(n, s) / C(n + e, s)`` and ``delta_e = s / (n + e) - rho_e * s / n`` for each
    ``e`` (see the module docstring)."""
    e = np.atleast_1d(np.asarray(e, np.int64))
    rho = np.array([np.prod((n + np.arange(1, k + 1) - s) / (n + np.arange(1, k + 1))) for k in e], np.float64)
    return rho, s / (n + e) - rho * s / n


def vote_bounds(counts: np.ndarray, total: int, alpha: float, tests: int) -> tuple[np.ndarray, np.ndarray]:
    """Clopper-Pearson bounds of ``counts / total``, each one-sided at ``alpha / tests``
    (Bonferroni over ``tests`` (user, item) pairs). Returns ``(lower, upper)`` shaped like
    ``counts``."""
    a = alpha / tests
    values, inverse = np.unique(np.asarray(counts, np.int64), return_inverse=True)
    lower = np.where(values > 0, stats.beta.ppf(a, np.maximum(values, 1), total - values + 1), 0.0)
    upper = np.where(values < total, stats.beta.isf(a, values + 1, np.maximum(total - values, 1)), 1.0)
    shape = np.shape(counts)
    return lower[inverse].reshape(shape), upper[inverse].reshape(shape)


def certified_counts(
    lower: np.ndarray,
    upper: np.ndarray,
    relevant: np.ndarray,
    top_n: int,
    n_votes: int,
    n: int,
    s: int,
    fakes: np.ndarray,
    candidates: np.ndarray | None = None,
) -> np.ndarray:
    """``[U, E]``: per user and per number of fake users ``e``, the certified ``r``. At least
    ``r`` of the user's relevant items stay in the ensemble's top-``N`` after ``e`` fake users
    join the data.

    Args:
      lower, upper: ``[U, I]`` bounds of the vote probabilities (:func:`vote_bounds`; equal for
        exact probabilities).
      relevant: ``[U, I]`` bool, the items ``I_u`` (PORE certifies the test items).
      top_n: ``N``. n_votes: ``N'``, the items each base recommends. n, s: users and subsample
        size.
      fakes: ``[E]`` the values of ``e``.
      candidates: ``[U, I]`` bool, the other items the ensemble may recommend. The default is
        every item; pass the unseen items when the ensemble never recommends seen ones.
    """
    rho, delta = rho_delta(n, s, fakes)
    lower, upper, relevant = np.asarray(lower, np.float64), np.asarray(upper, np.float64), np.asarray(relevant, bool)
    others = ~relevant if candidates is None else np.asarray(candidates, bool) & ~relevant
    out = np.zeros((lower.shape[0], rho.size), np.int64)
    for u in range(lower.shape[0]):
        rel = np.flatnonzero(relevant[u])
        if rel.size == 0:
            continue
        oth = np.flatnonzero(others[u])
        rel = rel[np.argsort(-lower[u, rel], kind="stable")]  # ties: lower item id first
        rest = np.sort(upper[u, oth])[::-1]  # [m] the other candidates by upper bound
        # the combined ranking (ties: lower id first): a relevant item's rank counts the relevant
        # items before it and the others whose upper bound beats its lower bound
        # (or equals it with a lower id)
        key_o = upper[u, oth]
        above = np.array([np.sum((key_o > lower[u, i]) | ((key_o == lower[u, i]) & (oth < i))) for i in rel], np.int64)
        ranks = np.arange(1, rel.size + 1) + above  # [t] 1-based
        alive = np.ones(rho.size, bool)
        for j, i in enumerate(rel):
            if ranks[j] > top_n:
                break
            size = top_n - ranks[j] + 1  # L
            c = rest[above[j] : above[j] + size]  # the next L other candidates, by upper bound
            share = (rho * c.sum() + n_votes * delta) / size
            single = rho * c.min() + delta if c.size else np.full(rho.size, np.inf)
            # strictly above, by more than rounding: an exact tie may go to the other item
            alive &= rho * lower[u, i] > np.minimum(share, single) + _MARGIN
            out[u] += alive
            if not alive.any():
                break
    return out


def target_hr_bound(
    lower: np.ndarray,
    upper: np.ndarray,
    targets: np.ndarray,
    eligible: np.ndarray,
    top_n: int,
    n: int,
    s: int,
    fakes: np.ndarray,
    candidates: np.ndarray | None = None,
) -> np.ndarray:
    """``[T, E]``: per target item and per ``e``, an upper bound of its HR@N over its eligible
    users after ``e`` fake users join, whatever their profiles.

    A target is certified out of a user's top-``N`` when ``N`` other candidates certainly beat
    it: their lowest poisoned probability ``rho_e * lower_v`` exceeds the target's highest,
    ``rho_e * upper_t + delta_e``. The bound is the share of eligible users for whom this fails.

    Args:
      targets: ``[T]`` item ids. eligible: ``[U, T]`` bool, the users each target is measured on
        (those who never interacted with it). Others as in :func:`certified_counts`.
    """
    rho, delta = rho_delta(n, s, fakes)
    lower, upper = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
    out = np.zeros((len(targets), rho.size))
    for j, t in enumerate(targets):
        users = np.flatnonzero(eligible[:, j])
        if users.size == 0:
            continue
        lo = lower[users].copy()
        if candidates is not None:
            lo[~np.asarray(candidates, bool)[users]] = -np.inf
        lo[:, t] = -np.inf
        if lo.shape[1] < top_n:
            out[j] = 1.0
            continue
        nth = -np.partition(-lo, top_n - 1, axis=1)[:, top_n - 1]  # [u] the N-th best rival's lower bound
        out_of_top = rho[None, :] * nth[:, None] > rho[None, :] * upper[users, t][:, None] + delta[None, :] + _MARGIN
        out[j] = 1.0 - out_of_top.mean(axis=0)
    return out


# ------------------------------------------------------------------------------------------------
# from vote counts: the certificate, the target bound, the curves


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
    ``e`` (:func:`target_hr_bound`), from ``total`` bases' votes."""
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
        pairs = [p for p in map(_PAIR.fullmatch, tokens) if p is not None]
        if len(pairs) < len(tokens):
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
