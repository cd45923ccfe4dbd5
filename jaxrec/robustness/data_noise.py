"""Training data with random interactions dropped or added: the data side of a robustness study.

Each function returns a new :class:`~jaxrec.data.interactions.Interactions` in the same id space
(so a victim retrained on it is ranked against the same test users and items). The experiment
layer retrains the victim on every (rate, seed) variant as members of one program (the engine's
padded data variants, :func:`jaxrec.train.steps.stack_data`).

* :func:`drop`: ``round(rate * N)`` of the ``N`` interactions, drawn uniformly without
  replacement, are removed (missing feedback).
* :func:`add`: ``round(rate * N)`` new (user, item) pairs, uniform over the pairs that are in
  neither ``train`` nor ``avoid`` (pass the held-out parts: noise never hands a model its test
  items), are appended (spurious feedback). Added rows get the largest rating and the latest
  timestamp of ``train`` when it has them.
"""

from __future__ import annotations

import numpy as np

from jaxrec.data.interactions import Interactions
from jaxrec.errors import JaxrecError

KINDS = ("drop", "add")


def _count(train: Interactions, rate: float) -> int:
    if not 0.0 <= rate < 1.0:
        raise JaxrecError(f"{train.source}: a noise rate must be in [0, 1), got {rate}")
    return int(round(rate * len(train)))


def drop(train: Interactions, rate: float, seed: int) -> Interactions:
    """``train`` without ``round(rate * len(train))`` uniformly drawn interactions."""
    n = _count(train, rate)
    keep = np.ones(len(train), bool)
    keep[np.random.default_rng(seed).choice(len(train), n, replace=False)] = False
    pick = lambda a: None if a is None else a[keep]  # noqa: E731
    return Interactions(
        train.users[keep],
        train.items[keep],
        train.n_users,
        train.n_items,
        pick(train.ratings),
        pick(train.timestamps),
        train.user_ids,
        train.item_ids,
        f"{train.source} (drop {rate:g})",
    )


def add(train: Interactions, rate: float, seed: int, avoid: tuple[Interactions, ...] = ()) -> Interactions:
    """``train`` with ``round(rate * len(train))`` new uniform pairs outside ``train`` and ``avoid``."""
    n = _count(train, rate)
    n_items = train.n_items
    taken = np.concatenate([i.users.astype(np.int64) * n_items + i.items for i in (train, *avoid)])
    taken = np.unique(taken)
    if n > train.n_users * n_items - taken.size:
        raise JaxrecError(f"{train.source}: not {n} free (user, item) pairs left to add")
    rng = np.random.default_rng(seed)
    new = np.zeros(0, np.int64)
    while new.size < n:  # rejection sampling: the free pairs are the vast majority in sparse data
        draw = rng.integers(0, train.n_users * n_items, 2 * (n - new.size) + 16)
        draw = draw[~np.isin(draw, taken)]
        new = np.concatenate([new, draw])
        new = new[np.sort(np.unique(new, return_index=True)[1])]  # first occurrences, in draw order
    new = new[:n]
    extend = lambda a, fill: None if a is None else np.concatenate([a, np.full(n, fill, a.dtype)])  # noqa: E731
    return Interactions(
        np.concatenate([train.users, new // n_items]).astype(np.int32),
        np.concatenate([train.items, new % n_items]).astype(np.int32),
        train.n_users,
        n_items,
        extend(train.ratings, train.ratings.max() if train.ratings is not None and len(train) else 0),
        extend(train.timestamps, train.timestamps.max() if train.timestamps is not None and len(train) else 0),
        train.user_ids,
        train.item_ids,
        f"{train.source} (add {rate:g})",
    )


def perturb_data(train: Interactions, kind: str, rate: float, seed: int, avoid: tuple[Interactions, ...] = ()):
    """:func:`drop` or :func:`add` by name (``kind`` in :data:`KINDS`)."""
    if kind == "drop":
        return drop(train, rate, seed)
    if kind == "add":
        return add(train, rate, seed, avoid)
    raise JaxrecError(f"unknown data perturbation {kind!r}; choose one of {KINDS}")
