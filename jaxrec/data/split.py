"""Seeded, deterministic train / (validation) / test splits of :class:`Interactions`.

Every split is per user and keeps the whole id space in every part (``n_users`` / ``n_items`` do
not change), so a model trained on ``split.train`` scores the users and items of ``split.test``.
Users with too few interactions to give a test item stay in training only; ``Split.info`` counts
them, e.g. ``{"users": 943, "users_with_test": 943, "users_with_valid": 943,
"users_train_only": 0, "train": 80.., "valid": .., "test": ..}``.

The per-user part sizes follow RecBole 1.2.1 (``recbole/data/dataset/dataset.py``,
``Dataset._calcu_split_ids`` / ``split_by_ratio`` / ``_split_index_by_leave_one_out``), so the
sizes of jaxrec's splits equal RecBole's for the same data and ratios. The random order itself
comes from numpy, not torch, so *which* rows land in test differs from RecBole's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jaxrec.data.interactions import Interactions, Split
from jaxrec.errors import JaxrecError

#: the splits an experiment names (``data.split``): per-user random ratio, per-user temporal ratio,
#: temporal leave-one-out, or the split the files come with
SPLITS = ("random", "temporal", "leave_one_out", "predefined")


def recbole_split_counts(total: int, ratios: Sequence[float]) -> list[int]:
    """Rows per part for one user with ``total`` rows: RecBole 1.2.1's ``_calcu_split_ids``.

    Ratios are normalised to sum 1 (``r / sum(ratios)``, Python floats). Every part but the first
    gets ``int(r * total)`` (rounded down); the first (train) part gets the rest. Then, from the
    last part backwards, a part whose exact share ``r * total`` is in ``(0, 1)`` is given one row
    taken from train, while train keeps more than one row. E.g. 8:1:1 gives
    ``total=1 -> [1, 0, 0]``, ``2 -> [1, 0, 1]``, ``3 -> [1, 1, 1]``, ``10 -> [8, 1, 1]``,
    ``25 -> [21, 2, 2]``.
    """
    tot_ratio = sum(ratios)
    ratios = [r / tot_ratio for r in ratios]
    cnt = [int(ratios[i] * total) for i in range(len(ratios))]
    cnt[0] = total - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * total < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


def split_info(train: Interactions, valid: Interactions | None, test: Interactions) -> dict:
    """Counts describing a split: users with any row, with test / valid rows, train-only users,
    and the number of rows in each part."""
    has = lambda p: p.user_counts() > 0  # noqa: E731
    any_ = has(train) | has(test) | (has(valid) if valid is not None else False)
    info = {
        "users": int(any_.sum()),
        "users_with_test": int(has(test).sum()),
        "users_with_valid": int(has(valid).sum()) if valid is not None else 0,
        "users_train_only": int((any_ & ~has(test) & ~(has(valid) if valid is not None else False)).sum()),
        "train": len(train),
        "valid": len(valid) if valid is not None else 0,
        "test": len(test),
    }
    return info


def _check_ratios(ratios: Sequence[float]) -> tuple[float, ...]:
    ratios = tuple(float(r) for r in ratios)
    if len(ratios) not in (2, 3):
        raise JaxrecError(f"ratios must be (train, test) or (train, valid, test), got {ratios}")
    if any(not np.isfinite(r) or r < 0 for r in ratios) or ratios[0] <= 0 or ratios[-1] <= 0:
        raise JaxrecError(f"ratios must be finite, >= 0, with train and test > 0; got {ratios}")
    return ratios


def _positions(users_sorted: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted by user: (0-based position within the user ``[N]``, count of the user ``[N]``)."""
    counts = np.bincount(users_sorted, minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(users_sorted.size) - starts[users_sorted]
    return pos, counts[users_sorted]


def _split_ordered(inter: Interactions, order: np.ndarray, part_sizes: np.ndarray, info_extra: dict) -> Split:
    """``order``: row indices grouped by user (stable); ``part_sizes [n_users, P]`` rows per part.

    The first ``part_sizes[u, 0]`` rows of user ``u`` in ``order`` go to train, the next to the
    second part, and so on. Each part keeps its rows in the original row order.
    """
    users_sorted = inter.users[order]
    pos, _ = _positions(users_sorted, inter.n_users)
    bounds = np.cumsum(part_sizes, axis=1)[users_sorted]  # [N, P]
    part_of = (pos[:, None] >= bounds).sum(axis=1)  # [N] in [0, P)
    parts = [inter.select(np.sort(order[part_of == p])) for p in range(part_sizes.shape[1])]
    train, test = parts[0], parts[-1]
    valid = parts[1] if len(parts) == 3 else None
    info = split_info(train, valid, test)
    info.update(info_extra)
    return Split(train=train, test=test, valid=valid, info=info)


def _ratio_sizes(counts: np.ndarray, ratios: tuple[float, ...]) -> np.ndarray:
    """``[n_users, P]`` part sizes from per-user counts (one RecBole rule call per distinct count)."""
    uniq, inv = np.unique(counts, return_inverse=True)
    table = np.array([recbole_split_counts(int(t), ratios) for t in uniq], dtype=np.int64)
    return table[inv.reshape(-1)]


def random_ratio(inter: Interactions, ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> Split:
    """Per-user random split by ratios (RecBole's ``split: {RS: ratios}``, ``group_by: user``,
    ``order: RO``).

    Rows are shuffled with ``np.random.default_rng(seed)``, grouped by user (stable), and each
    user's first rows go to train, then valid, then test, with per-user sizes from
    :func:`recbole_split_counts` (RecBole 1.2.1 ``Dataset._calcu_split_ids``). Two ratios give
    train / test with ``valid=None``.

    Args:
      inter: ``N`` rows.
      ratios: ``(train, valid, test)`` or ``(train, test)``; normalised to sum 1.
      seed: the same seed gives the same split.
    """
    ratios = _check_ratios(ratios)
    perm = np.random.default_rng(seed).permutation(len(inter))
    order = perm[np.argsort(inter.users[perm], kind="stable")]
    sizes = _ratio_sizes(inter.user_counts(), ratios)
    return _split_ordered(inter, order, sizes, {"strategy": "random_ratio", "ratios": list(ratios), "seed": seed})


ORDERS = ("time", "file")  #: how a user's events are ordered (:func:`event_order`)
LOO_RULES = ("recbole", "sasrec")  #: who keeps a short user's events in training (:func:`leave_one_out`)


def event_order(inter: Interactions, order: str = "time", what: str = "this split") -> np.ndarray:
    """Row indices grouped by user (users ascending), each user's rows in event order.

    ``order="time"``: by ``timestamps`` (needed), equal times keeping their row order; ``"file"``:
    the rows' own order (a file written in time order per user, e.g. the SASRec release format).
    """
    if order not in ORDERS:
        raise JaxrecError(f"unknown event order {order!r}; choose one of {ORDERS}")
    if order == "file":
        return np.argsort(inter.users, kind="stable")
    if inter.timestamps is None:
        raise JaxrecError(
            f"{inter.source}: {what} needs the events' order, and this data has no timestamps "
            "(if each user's rows are in time order in the file, use data.order: file)"
        )
    by_time = np.argsort(inter.timestamps, kind="stable")  # ties keep row order
    return by_time[np.argsort(inter.users[by_time], kind="stable")]


def _time_order(inter: Interactions, what: str) -> np.ndarray:
    return event_order(inter, "time", what)


def temporal_ratio(inter: Interactions, ratios: Sequence[float] = (0.8, 0.1, 0.1)) -> Split:
    """Per-user split by time (RecBole's ``order: TO`` with ``split: {RS: ratios}``): each user's
    earliest rows go to train, the latest to test; sizes as in :func:`random_ratio`. Equal
    timestamps keep their row order. Needs ``inter.timestamps``."""
    ratios = _check_ratios(ratios)
    order = _time_order(inter, "temporal_ratio")
    sizes = _ratio_sizes(inter.user_counts(), ratios)
    return _split_ordered(inter, order, sizes, {"strategy": "temporal_ratio", "ratios": list(ratios)})


def leave_one_out(inter: Interactions, valid: bool = True, order: str = "time", rule: str = "recbole") -> Split:
    """Per-user leave-one-out: the latest event is test, the one before is validation.

    ``rule="recbole"`` (RecBole 1.2.1's ``_split_index_by_leave_one_out``): a user with ``n``
    rows keeps at least one in train, so ``n = 1`` is train only and ``n = 2`` (with ``valid``)
    gives train + test and no validation row. ``rule="sasrec"`` (Kang & McAuley's
    ``data_partition``): a user with fewer than 3 rows is train only, every other user gives one
    validation and one test row (one test row without ``valid``). ``order``: ``time`` (by
    timestamps, equal times keeping their row order) or ``file`` (the rows' own order), see
    :func:`event_order`. ``info["order"]`` records it, so sequences rebuilt from the parts
    follow the same order.
    """
    if rule not in LOO_RULES:
        raise JaxrecError(f"unknown leave-one-out rule {rule!r}; choose one of {LOO_RULES}")
    order_idx = event_order(inter, order, "leave_one_out")
    counts = inter.user_counts()
    if rule == "recbole":
        held = np.minimum(2 if valid else 1, np.maximum(counts - 1, 0))
    else:
        held = np.where(counts >= 3, 2 if valid else 1, 0)
    test = (held >= 1).astype(np.int64)
    if valid:
        val = (held >= 2).astype(np.int64)
        sizes = np.stack([counts - test - val, val, test], axis=1)
    else:
        sizes = np.stack([counts - test, test], axis=1)
    return _split_ordered(inter, order_idx, sizes, {"strategy": "leave_one_out", "order": order, "rule": rule})
