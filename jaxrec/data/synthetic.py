"""Synthetic interaction data with a planted structure, seeded.

* :func:`low_rank` -- RevAdv's synthetic experiment (Tang, Wen, Wang, RecSys 2020; the notebook
  ``synthetic_exp.ipynb`` of ``graytowne/revisit_adv_rec``): a dense Gaussian matrix of rank
  ``rank``, ``X = U V`` with ``U [n_users, rank]`` and ``V [rank, n_items]`` standard normal, and a
  user interacts with item ``i`` when ``X_ui > threshold``. With ``rank = 20`` and ``threshold = 5``
  (their settings) about 12 % of the matrix is interactions; users with similar factors share
  items, so a recommender can learn the structure and an attack can exploit it.
* :func:`power_law` -- data of any size shaped like real logs (users' activity and items'
  popularity follow power laws) with a planted low-rank structure, generated in ``O(pairs)``
  time and memory; :func:`from_spec` reads the ``dataset: synthetic:...`` spec of a config.
* :func:`hold_out_one` -- per user, one random interaction held out as the test item (users with
  fewer than two interactions keep everything in training).
"""

from __future__ import annotations

import numpy as np

from jaxrec.data.interactions import Interactions, Split
from jaxrec.data.split import split_info
from jaxrec.errors import JaxrecError


def low_rank(n_users: int, n_items: int, rank: int = 20, threshold: float = 5.0, seed: int = 0) -> Interactions:
    """``n_users x n_items`` interactions where the rank-``rank`` Gaussian score exceeds
    ``threshold`` (see the module docstring); seeded. Raw ids are the indices."""
    if min(n_users, n_items, rank) < 1:
        raise JaxrecError(f"low_rank needs positive sizes, got {n_users} users, {n_items} items, rank {rank}")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_users, rank)) @ rng.standard_normal((rank, n_items))
    users, items = np.nonzero(x > threshold)
    if users.size == 0:
        raise JaxrecError(f"low_rank: no score exceeds the threshold {threshold}; lower it")
    return Interactions(
        users, items, n_users, n_items, source=f"low-rank({n_users}x{n_items}, rank {rank}, seed {seed})"
    )


def hold_out_one(inter: Interactions, seed: int = 0) -> Split:
    """One random interaction of every user with two or more held out as its test item (RevAdv's
    synthetic split); the rest is training."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(inter))
    users = inter.users[order]
    _, first = np.unique(users, return_index=True)  # each user's first row in the random order
    first = first[inter.user_counts()[users[first]] >= 2]
    test = np.zeros(len(inter), bool)
    test[first] = True
    train, held = inter.select(order[~test]), inter.select(order[test])
    return Split(train=train, test=held, info=split_info(train, None, held))


#: the keys of a ``synthetic:`` spec and their defaults (:func:`power_law`'s arguments)
SPEC_DEFAULTS = {
    "users": 10_000,
    "items": 5_000,
    "pairs": 500_000,
    "clusters": 32,
    "user_alpha": 0.5,
    "item_alpha": 0.8,
    "noise": 0.2,
    "seed": 0,
}


def _zipf_weights(n: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` weights ``rank^-alpha``, summing to 1, in a random order of the ids."""
    w = np.arange(1, n + 1, dtype=np.float64) ** -alpha
    return rng.permutation(w / w.sum())


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    """``np.unique`` by sorting (numpy 2's hash path is ~8x slower on 10^7 int64 keys)."""
    x = np.sort(x)
    return x[np.concatenate([[True], x[1:] != x[:-1]])]


def power_law(
    n_users: int,
    n_items: int,
    n_pairs: int,
    clusters: int = 32,
    user_alpha: float = 0.5,
    item_alpha: float = 0.8,
    noise: float = 0.2,
    seed: int = 0,
) -> Interactions:
    """About ``n_pairs`` distinct (user, item) pairs with power-law activity and popularity and a
    planted block (rank-``clusters``) structure; seeded, ``O(n_pairs)``.

    The model: every item belongs to one of ``clusters`` taste clusters and has a popularity
    ``∝ rank^-item_alpha``; every user belongs to a cluster and has an activity
    ``∝ rank^-user_alpha`` (the expected number of its pairs, at least one; ids are assigned to
    ranks at random). Each pair of a user is drawn, with probability ``1 - noise``, among its
    cluster's items by popularity, else among all items by popularity -- so the interaction
    matrix is a popularity-weighted rank-``clusters`` matrix plus noise, and a recommender that
    learns the clusters beats the popularity ranking. Duplicate draws are redrawn (by popularity
    for three rounds, then uniformly within the same mixture, which heavy users need once they
    have the popular items; a user has at most ``n_items / 2`` pairs), so the result may hold a
    little fewer than ``n_pairs`` pairs on very dense settings. Raw ids are the indices.
    """
    args = {"users": n_users, "items": n_items, "pairs": n_pairs, "clusters": clusters}
    for k, v in args.items():
        if int(v) < 1:
            raise JaxrecError(f"synthetic data: {k} must be >= 1, got {v}")
    if n_pairs < n_users:
        raise JaxrecError(f"synthetic data: {n_pairs} pairs for {n_users} users; every user needs one (pairs >= users)")
    if n_pairs > n_users * n_items:
        raise JaxrecError(f"synthetic data: {n_pairs} pairs do not fit in {n_users} x {n_items}")
    if not 0.0 <= noise <= 1.0:
        raise JaxrecError(f"synthetic data: noise must be in [0, 1], got {noise}")
    if user_alpha < 0 or item_alpha < 0:
        raise JaxrecError(f"synthetic data: the alphas must be >= 0, got {user_alpha}, {item_alpha}")
    rng = np.random.default_rng(seed)
    clusters = min(clusters, n_items)
    item_cluster = rng.integers(0, clusters, n_items)
    item_cluster[:clusters] = np.arange(clusters)  # no empty cluster
    popularity = _zipf_weights(n_items, item_alpha, rng)
    user_cluster = rng.integers(0, clusters, n_users)
    activity = _zipf_weights(n_users, user_alpha, rng)
    # per cluster, its items by popularity as one cumulative table: cluster c owns [start[c], start[c + 1])
    order = np.argsort(item_cluster, kind="stable")
    start = np.searchsorted(item_cluster[order], np.arange(clusters + 1))
    within = popularity[order]
    cum = np.cumsum(within)
    base = np.concatenate([[0.0], cum])[start]  # cumulative mass before each cluster
    global_cdf = np.cumsum(popularity)
    counts = np.minimum(rng.multinomial(n_pairs - n_users, activity) + 1, max(n_items // 2, 1))

    keys = np.empty(0, np.int64)
    want = counts.astype(np.int64)
    for rnd in range(8):  # redraw the duplicates; after 3 rounds, uniformly (heavy users exhaust the head)
        users = np.repeat(np.arange(n_users, dtype=np.int64), want)
        if users.size <= n_pairs * 1e-4:
            break
        c = user_cluster[users]
        u = rng.random(users.size)
        if rnd < 3:
            lo, hi = base[c], base[c] + (cum[start[c + 1] - 1] - base[c])
            pos = np.searchsorted(cum, lo + u * (hi - lo), side="right")
            anywhere = np.searchsorted(global_cdf, rng.random(users.size) * global_cdf[-1], side="right")
        else:
            pos = start[c] + (u * (start[c + 1] - start[c])).astype(np.int64)
            anywhere = rng.integers(0, n_items, users.size)
        own = order[np.clip(pos, start[c], start[c + 1] - 1)]
        items = np.where(rng.random(users.size) < noise, np.minimum(anywhere, n_items - 1), own)
        keys = _sorted_unique(np.concatenate([keys, users * n_items + items]))
        want = np.maximum(counts - np.bincount(keys // n_items, minlength=n_users), 0)
    users, items = keys // n_items, keys % n_items
    source = f"synthetic({n_users}x{n_items}, {len(keys)} pairs, {clusters} clusters, seed {seed})"
    return Interactions(users.astype(np.int32), items.astype(np.int32), n_users, n_items, source=source)


def from_spec(spec: str) -> Interactions:
    """``synthetic:users=100000,items=50000,pairs=6000000,seed=0`` -> :func:`power_law`'s data.

    Keys (all optional; defaults :data:`SPEC_DEFAULTS`): users, items, pairs, clusters,
    user_alpha, item_alpha, noise, seed. A bad key or value is one error naming it.
    """
    body = spec.split(":", 1)[1] if ":" in spec else ""
    values = dict(SPEC_DEFAULTS)
    for part in filter(None, (p.strip() for p in body.split(","))):
        key, eq, raw = part.partition("=")
        key = key.strip()
        if not eq or key not in SPEC_DEFAULTS:
            raise JaxrecError(
                f"data.dataset: {spec!r}: {part!r} is not key=value with a key among {sorted(SPEC_DEFAULTS)}"
            )
        kind = type(SPEC_DEFAULTS[key])
        try:
            values[key] = kind(float(raw)) if kind is int and float(raw).is_integer() else kind(raw)
        except ValueError:
            raise JaxrecError(f"data.dataset: {spec!r}: {key}={raw!r} is not a {kind.__name__}") from None
    return power_law(
        values["users"],
        values["items"],
        values["pairs"],
        values["clusters"],
        values["user_alpha"],
        values["item_alpha"],
        values["noise"],
        values["seed"],
    )
