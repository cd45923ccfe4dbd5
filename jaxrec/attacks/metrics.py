"""Target-item metrics of a (poisoned) recommender: ``target_hr@K`` and ``target_score_shift``.

Definitions (RecAD's target hit ratio, the attack protocol): for a target item t, the *eligible*
users are the **real** users who never interacted with t (any rating, any part of the real data);
each ranks t among the items it has not interacted with in training (its training positives are
masked, as in the test ranking). ``target_hr@K`` is the share of eligible users with t in their
top K, averaged over the targets; ``target_score_shift`` the mean change of t's predicted score
over the eligible users (poisoned minus clean model), averaged over the targets.

Fake users are never eligible: rows are built only for users below ``n_real``. The ranking is the
one evaluator's (:func:`jaxrec.evaluate.rank_users`): each (user, target) pair is one ranking row
whose single held-out item is the target, so ``hit@K`` of that row is the target's hit and the
row's held-out score is the target's score.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.data.interactions import Interactions
from jaxrec.errors import JaxrecError
from jaxrec.evaluate import RankingData, check_ks, for_each_member, rank_users, ranking_data


@dataclasses.dataclass(frozen=True)
class TargetRanking:
    """Ranking rows of (eligible user, target) pairs.

    Attributes:
      data: :class:`RankingData` whose row ``p`` (in the flattened chunk order) is pair ``p``.
      pair_target: ``[P]`` index into ``targets`` of each pair; pair_user: ``[P]`` its user.
      targets: ``[T]`` item indices.
    """

    data: RankingData
    pair_target: np.ndarray
    pair_user: np.ndarray
    targets: np.ndarray


def target_ranking(
    train_positives: Interactions,
    interacted: Sequence[Interactions],
    targets: Sequence[int],
    n_real: int,
    chunk: int | None = None,
    histories: np.ndarray | None = None,
    mask: bool = True,
) -> TargetRanking:
    """:class:`TargetRanking` of ``targets`` for the real users ``< n_real``.

    Args:
      train_positives: the real users' training positives (masked in the ranking unless ``mask``
        is false: a sequence model's evaluation by default).
      interacted: every real interaction (e.g. the rated train / valid / test parts): a user who
        interacted with a target in any of them is not eligible for it.
      histories: a sequence model's queries, ``[n_users, max_len]`` per user
        (:func:`jaxrec.data.sequences.histories`); None: the user ids are the queries.
    """
    targets = np.asarray(list(targets), np.int64)
    n_items = train_positives.n_items
    if targets.size == 0 or targets.min() < 0 or targets.max() >= n_items:
        raise JaxrecError(f"target items must be indices in [0, {n_items}), got {targets.tolist()}")
    seen = np.zeros((n_real, targets.size), bool)
    col = {int(t): j for j, t in enumerate(targets)}
    for part in interacted:
        keep = (part.users < n_real) & np.isin(part.items, targets)
        seen[part.users[keep], [col[int(i)] for i in part.items[keep]]] = True
    pair_target, pair_user = np.nonzero(~seen.T)  # target-major order
    if pair_user.size == 0:
        raise JaxrecError("every real user has interacted with every target: no user to measure")
    n_pairs = pair_user.size
    held = Interactions(np.arange(n_pairs), targets[pair_target], n_pairs, n_items, source="targets")
    # each pair row masks its user's training positives
    ptr, idx = train_positives.csr()
    deg = np.diff(ptr)[pair_user]
    rows = np.repeat(np.arange(n_pairs), deg)
    starts = np.repeat(ptr[pair_user], deg) + np.arange(rows.size) - np.repeat(np.cumsum(deg) - deg, deg)
    masked = [Interactions(rows, idx[starts], n_pairs, n_items, source="train positives")] if mask else []
    queries = None if histories is None else np.asarray(histories)[pair_user]
    data = ranking_data(held, masked, chunk, queries)
    data = data.replace(users=jnp.asarray(pair_user[np.asarray(data.users)].astype(np.int32)))
    return TargetRanking(data, pair_target, pair_user, targets.astype(np.int32))


def pair_outcomes(score_all, data: RankingData, ks: Sequence[int]) -> dict:
    """Per ranking row ``hit@K`` (0/1) and the target's ``score``, flattened to ``[n_chunks * C]``
    (rows past the pairs are padding), under ``score_all`` (pure: ``users [C] -> scores [C,
    n_items]``)."""
    r = rank_users(score_all, data, ks)
    out = {f"hit@{k}": r.metrics[f"hit@{k}"].reshape(-1) for k in ks}
    out["score"] = r.held_out_scores[..., 0].reshape(-1)
    return out


@functools.partial(jax.jit, static_argnums=(0, 4, 5))
def _members_outcomes(model, params, inputs, data: RankingData, ks, inputs_batched):
    return for_each_member(model, lambda score_all: pair_outcomes(score_all, data, ks), params, inputs, inputs_batched)


def members_outcomes(
    model, params, inputs, ranking: TargetRanking, ks: Sequence[int], inputs_batched: bool = False
) -> dict:
    """:func:`pair_outcomes` of ``M`` stacked parameter sets in one vmapped program:
    ``{"hit@K": [M, P], "score": [M, P]}`` as numpy (``inputs`` per member when batched)."""
    ks = check_ks(ks, model.n_items)
    out = jax.device_get(_members_outcomes(model, params, inputs, ranking.data, ks, inputs_batched))
    return {k: np.asarray(v)[:, : ranking.pair_user.size] for k, v in out.items()}


def target_metrics(outcome: dict, ranking: TargetRanking, clean_score: np.ndarray | None = None) -> dict:
    """``target_hr@K`` (and ``target_score_shift`` against the clean model's ``[P]`` scores) of one
    member's ``outcome`` (numpy, ``[P]`` per key): per-target means, then their mean."""
    t = ranking.pair_target
    n_t = np.bincount(t, minlength=ranking.targets.size)
    per_target = lambda v: np.bincount(t, np.asarray(v, np.float64), minlength=n_t.size) / np.maximum(n_t, 1)  # noqa: E731
    out = {f"target_{k}": float(per_target(v)[n_t > 0].mean()) for k, v in outcome.items() if k.startswith("hit@")}
    out = {k.replace("target_hit@", "target_hr@"): v for k, v in out.items()}
    out["target_score"] = float(per_target(outcome["score"])[n_t > 0].mean())
    if clean_score is not None:
        out["target_score_shift"] = float(per_target(outcome["score"] - clean_score)[n_t > 0].mean())
    return out
