"""Injecting fake users into the real data, in one id space that never re-indexes.

The attack protocol: fake profiles carry ratings and go through the same pipeline as real users;
after injection, ratings >= a threshold become positives. jaxrec keeps every id where it is:

* :func:`widen` adds ``n_slots`` fake-user slots *after* the real users (users ``n_real ..
  n_real + n_slots - 1``), so real users and every item keep their index;
* :func:`inject` writes ``k <= n_slots`` profiles into the first ``k`` slots; unused slots are
  users without interactions, which touch no loss, gradient or graph edge (a member with fewer
  fakes is the same run as on data without them, up to the table's unused rows);
* :func:`positives` thresholds ratings without compacting the id space (items nobody rates >= 4
  stay items; a compacting filter would renumber them and the "target" would be another item).

Targets: :func:`pick_targets` draws them (seeded) among the unpopular or popular half of the items
with at least one training positive, :func:`target_indices` maps raw item ids.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from jaxrec.data.interactions import Interactions, Split
from jaxrec.data.loaders import concat
from jaxrec.data.preprocess import to_implicit
from jaxrec.errors import JaxrecError

POOLS = ("unpopular", "popular", "all")


def widen(inter: Interactions, n_users: int) -> Interactions:
    """``inter`` in an id space of ``n_users >= inter.n_users`` users; the new users' raw ids are
    ``fake-0``, ``fake-1``, ... (as strings, whatever the real ids' type)."""
    extra = n_users - inter.n_users
    if extra < 0:
        raise JaxrecError(f"widen: {n_users} users is fewer than the {inter.n_users} real ones")
    ids = np.concatenate([inter.user_ids.astype(object), np.array([f"fake-{i}" for i in range(extra)], object)])
    return dataclasses.replace(inter, n_users=n_users, user_ids=ids)


def widen_split(split: Split, n_slots: int) -> Split:
    """Every part of ``split`` with ``n_slots`` fake-user slots after the real users."""
    n = split.n_users + n_slots
    parts = [None if p is None else widen(p, n) for p in (split.train, split.valid, split.test)]
    return Split(train=parts[0], valid=parts[1], test=parts[2], info={**split.info, "fake_slots": n_slots})


def inject(train: Interactions, profiles: np.ndarray, first_slot: int) -> Interactions:
    """``train`` plus the rated ``profiles [k, n_items]`` (0 = not rated) as users ``first_slot ..
    first_slot + k - 1`` of ``train``'s (widened) id space, which must have no rows yet."""
    p = np.asarray(profiles)
    if p.ndim != 2 or p.shape[1] != train.n_items:
        raise JaxrecError(f"profiles must be [k, {train.n_items}], got shape {p.shape}")
    if first_slot + p.shape[0] > train.n_users:
        raise JaxrecError(f"{p.shape[0]} profiles from user {first_slot} exceed the {train.n_users} user slots")
    if np.any(train.users >= first_slot):
        raise JaxrecError(f"{train.source}: users from {first_slot} on already have interactions")
    rows, items = np.nonzero(p)
    fakes = Interactions(
        rows + first_slot,
        items,
        train.n_users,
        train.n_items,
        ratings=None if train.ratings is None else p[rows, items],
        user_ids=train.user_ids,
        item_ids=train.item_ids,
        source="fake-profiles",
    )
    return concat([dataclasses.replace(train, timestamps=None), fakes], source=f"{train.source}+fakes")


def positives(inter: Interactions, threshold: float | None) -> Interactions:
    """Rows with ``rating >= threshold`` (every row when None), in the same id space."""
    return to_implicit(inter, threshold, compact=False)


def positives_split(split: Split, threshold: float | None) -> Split:
    """:func:`positives` of every part."""
    parts = [None if p is None else positives(p, threshold) for p in (split.train, split.valid, split.test)]
    return Split(train=parts[0], valid=parts[1], test=parts[2], info=split.info)


def without_users(inter: Interactions, users: np.ndarray) -> Interactions:
    """``inter`` without any row of ``users`` (e.g. the users a detector flags)."""
    drop = np.zeros(inter.n_users, bool)
    drop[np.asarray(users, np.int64)] = True
    return inter.select(~drop[inter.users])


def pick_targets(train_positives: Interactions, n: int, pool: str, seed: int) -> np.ndarray:
    """``n`` distinct item indices drawn (seeded) from the items with >= 1 training positive:
    the less popular half (``unpopular``), the more popular half (``popular``) or all of them."""
    if pool not in POOLS:
        raise JaxrecError(f"unknown target pool {pool!r}; choose one of {list(POOLS)}")
    counts = train_positives.item_counts()
    rated = np.flatnonzero(counts > 0)
    by_pop = rated[np.argsort(counts[rated], kind="stable")]
    half = by_pop.size // 2
    candidates = {"unpopular": by_pop[:half], "popular": by_pop[half:], "all": by_pop}[pool]
    if not 1 <= n <= candidates.size:
        raise JaxrecError(f"cannot draw {n} target items from the {candidates.size} {pool} items")
    return np.sort(np.random.default_rng(seed).choice(candidates, n, replace=False)).astype(np.int32)


def target_indices(raw_ids: Sequence, inter: Interactions) -> np.ndarray:
    """Item indices of raw item ids (as in the data file, whatever their type: MovieLens' and
    Gowalla's are integers, a CSV's may be strings); an id matches by its text, so ``50`` and
    ``"50"`` both name item 50. An unknown id is an error naming it."""
    index = {str(k): i for k, i in inter.item_index.items()}
    out = []
    for raw in raw_ids:
        if str(raw) not in index:
            raise JaxrecError(f"target item {raw!r} is not an item of {inter.source}")
        out.append(index[str(raw)])
    if len(set(out)) != len(out):
        raise JaxrecError(f"target items repeat: {list(raw_ids)}")
    return np.asarray(out, np.int32)
