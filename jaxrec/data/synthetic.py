"""Synthetic interaction data with a planted structure, seeded.

* :func:`low_rank` -- RevAdv's synthetic experiment (Tang, Wen, Wang, RecSys 2020; the notebook
  ``synthetic_exp.ipynb`` of ``graytowne/revisit_adv_rec``): a dense Gaussian matrix of rank
  ``rank``, ``X = U V`` with ``U [n_users, rank]`` and ``V [rank, n_items]`` standard normal, and a
  user interacts with item ``i`` when ``X_ui > threshold``. With ``rank = 20`` and ``threshold = 5``
  (their settings) about 12 % of the matrix is interactions; users with similar factors share
  items, so a recommender can learn the structure and an attack can exploit it.
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
