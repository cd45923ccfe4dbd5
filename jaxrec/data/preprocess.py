"""Pure numpy preprocessing of :class:`Interactions`; every function returns a new object.

Filters that can leave users or items without rows (:func:`to_implicit` with a threshold,
:func:`kcore`) re-index to contiguous ids by default (``compact=True``) and slice the raw-id maps
to match, so ``user_ids[u]`` stays the raw id of user ``u``. Pass ``compact=False`` to keep the
id space (e.g. to keep indices comparable before and after).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxrec.data.interactions import Interactions
from jaxrec.errors import JaxrecError


def compact(inter: Interactions) -> Interactions:
    """Drop users and items without rows and renumber the rest ``0..n-1`` in their old order.

    ``user_ids`` / ``item_ids`` are sliced alike. Raises if no rows are left.
    """
    if len(inter) == 0:
        raise JaxrecError(f"{inter.source}: no interactions left after filtering")
    keep_u = np.flatnonzero(inter.user_counts() > 0)
    keep_i = np.flatnonzero(inter.item_counts() > 0)
    new_u = np.full(inter.n_users, -1, dtype=np.int64)
    new_u[keep_u] = np.arange(keep_u.size)
    new_i = np.full(inter.n_items, -1, dtype=np.int64)
    new_i[keep_i] = np.arange(keep_i.size)
    return dataclasses.replace(
        inter,
        users=new_u[inter.users],
        items=new_i[inter.items],
        n_users=int(keep_u.size),
        n_items=int(keep_i.size),
        user_ids=inter.user_ids[keep_u],
        item_ids=inter.item_ids[keep_i],
    )


def _finish(inter: Interactions, compact_ids: bool) -> Interactions:
    if len(inter) == 0:
        raise JaxrecError(f"{inter.source}: no interactions left after filtering")
    return compact(inter) if compact_ids else inter


def to_implicit(inter: Interactions, threshold: float | None = None, *, compact: bool = True) -> Interactions:
    """Explicit ratings -> implicit positives (rows without ``ratings``).

    ``threshold=None``: every row is a positive (RecBole's default; ml-100k keeps 100,000 rows).
    Otherwise rows with ``rating >= threshold`` are kept. Needs ratings when a threshold is given.
    """
    if threshold is None:
        return dataclasses.replace(inter, ratings=None)
    if inter.ratings is None:
        raise JaxrecError(f"{inter.source}: to_implicit(threshold={threshold}) needs ratings")
    kept = inter.select(inter.ratings >= threshold)
    return _finish(dataclasses.replace(kept, ratings=None), compact)


def deduplicate(inter: Interactions, keep: str = "last") -> Interactions:
    """Keep one row per (user, item) pair.

    ``keep="last"`` keeps the latest row (by timestamp when present, equal timestamps and data
    without timestamps by row order), ``keep="first"`` the earliest. Kept rows stay in their
    original order; the id space is unchanged (every user and item keeps a row).
    """
    if keep not in ("first", "last"):
        raise JaxrecError(f"deduplicate: keep must be 'first' or 'last', got {keep!r}")
    n = len(inter)
    # order rows by time (stable: ties and no timestamps -> row order)
    order = np.arange(n) if inter.timestamps is None else np.argsort(inter.timestamps, kind="stable")
    if keep == "last":
        order = order[::-1]
    key = inter.users[order].astype(np.int64) * inter.n_items + inter.items[order]
    _, first = np.unique(key, return_index=True)  # first occurrence in `order`
    rows = np.sort(order[first])
    return inter.select(rows)


def kcore(inter: Interactions, user_k: int = 0, item_k: int = 0, *, compact: bool = True) -> Interactions:
    """Iteratively drop users with fewer than ``user_k`` rows and items with fewer than ``item_k``
    rows until nothing changes (the k-core). Rows are counted as they are, so run
    :func:`deduplicate` first to count distinct pairs."""
    if user_k < 0 or item_k < 0:
        raise JaxrecError(f"kcore: user_k and item_k must be >= 0, got {user_k}, {item_k}")
    mask = np.ones(len(inter), dtype=bool)
    while True:
        uc = np.bincount(inter.users[mask], minlength=inter.n_users)
        ic = np.bincount(inter.items[mask], minlength=inter.n_items)
        new = mask & (uc[inter.users] >= user_k) & (ic[inter.items] >= item_k)
        if new.sum() == mask.sum():
            break
        mask = new
    return _finish(inter.select(mask), compact)
