"""Rated fake-user profiles: the random, average, bandwagon and GAN shilling attacks.

A profile is a row of a ratings matrix ``[N, n_items]`` float32 (0 = not rated): the target
items, optional *selected* items and *filler* items (Lam & Riedl, WWW 2004; Mobasher et al.,
ACM TOIT 2007). Ratings are integers in the real data's rating range:

* ``random``    -- filler drawn uniformly, rated ``round(N(global mean, global std))``;
* ``average``   -- filler drawn uniformly, item i rated ``round(N(mean_i, std_i))``;
* ``bandwagon`` -- the ``selected`` most popular items at the maximum, the rest of the filler as
  ``random``;
* ``gan``       -- filler chosen by the GAN's generator (``filler_items``, see
  :func:`jaxrec.attacks.profiles.gan_profiles`, as AUSH / Leg-UP write GAN filler, Lin et al.
  CIKM 2020 / TKDE 2022), rated as ``average``.

Targets are rated at the maximum (``push``) or the minimum (``nuke``). Ratings are clipped to the
range and rounded. Everything here is numpy and seeded: the same seed gives the same profiles.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from jaxrec.data.interactions import Interactions
from jaxrec.errors import JaxrecError

KINDS = ("random", "average", "bandwagon", "gan")
INTENTS = ("push", "nuke")


@dataclasses.dataclass(frozen=True)
class RatingStats:
    """What the attacker knows of the real (rated) training data.

    Attributes:
      mean, std: of all ratings; low, high: the rating range.
      item_mean, item_std: ``[n_items]`` per item (the global figures for unrated items; std of an
        item rated once is the global std).
      popularity: ``[n_items]`` ratings per item; profile_length: mean ratings per rating user.
    """

    mean: float
    std: float
    low: float
    high: float
    item_mean: np.ndarray
    item_std: np.ndarray
    popularity: np.ndarray
    profile_length: float


def rating_stats(train: Interactions) -> RatingStats:
    """:class:`RatingStats` of rated interactions (e.g. a split's rated training part)."""
    if train.ratings is None or len(train) == 0:
        raise JaxrecError(f"{train.source}: the shilling attacks need rated interactions")
    r = train.ratings.astype(np.float64)
    count = np.bincount(train.items, minlength=train.n_items)
    total = np.bincount(train.items, r, minlength=train.n_items)
    sq = np.bincount(train.items, r * r, minlength=train.n_items)
    mean, std = float(r.mean()), float(r.std())
    item_mean = np.where(count > 0, total / np.maximum(count, 1), mean)
    var = sq / np.maximum(count, 1) - (total / np.maximum(count, 1)) ** 2
    item_std = np.where(count > 1, np.sqrt(np.maximum(var, 0.0)), std)
    users = train.user_counts()
    return RatingStats(mean, std, float(r.min()), float(r.max()), item_mean, item_std, count,
                       float(users[users > 0].mean()))


def _uniform_items(rng: np.random.Generator, n: int, candidates: np.ndarray, k: int) -> np.ndarray:
    """``[n, k]`` items, each row ``k`` distinct ``candidates`` drawn uniformly."""
    return candidates[np.argsort(rng.random((n, candidates.size)), axis=1)[:, :k]]


def fake_profiles(
    kind: str,
    n: int,
    stats: RatingStats,
    targets: Sequence[int],
    filler: int,
    seed: int,
    intent: str = "push",
    selected: int = 10,
    filler_items: np.ndarray | None = None,
) -> np.ndarray:
    """``n`` rated fake profiles of an attack ``kind`` (see the module docstring).

    Args:
      targets: item indices every profile rates at the maximum (push) or the minimum (nuke).
      filler: items per profile besides the targets (bandwagon: selected + filler = ``filler``).
      selected: bandwagon's popular items.
      filler_items: ``[n, n_items]`` 0/1 filler chosen by the GAN (``kind="gan"`` only); target
        items in it are ignored.
    Returns ``[n, n_items]`` float32 ratings, 0 where a profile rates nothing.
    """
    if kind not in KINDS:
        raise JaxrecError(f"unknown attack {kind!r}; choose one of {list(KINDS)}")
    if intent not in INTENTS:
        raise JaxrecError(f"unknown attack intent {intent!r}; choose one of {list(INTENTS)}")
    n_items = stats.item_mean.size
    t = np.unique(np.asarray(list(targets), np.int64))
    if t.size == 0 or t.min() < 0 or t.max() >= n_items:
        raise JaxrecError(f"target items must be one or more indices in [0, {n_items}), got {list(targets)}")
    if n < 1 or filler < 1:
        raise JaxrecError(f"an attack needs >= 1 fake user and >= 1 filler item, got {n} and {filler}")
    if filler > n_items - t.size:
        raise JaxrecError(f"filler size {filler} exceeds the {n_items - t.size} non-target items")
    rng = np.random.default_rng(seed)
    out = np.zeros((n, n_items), np.float32)
    rows = np.arange(n)[:, None]
    free = np.setdiff1d(np.arange(n_items), t)
    if kind == "bandwagon":
        if not 0 < selected <= filler:
            raise JaxrecError(f"bandwagon: selected items must be in [1, filler={filler}], got {selected}")
        by_pop = free[np.argsort(-stats.popularity[free], kind="stable")]
        popular, free = by_pop[:selected], by_pop[selected:]
        out[:, popular] = stats.high
        filler -= selected
    if kind == "gan":
        if filler_items is None or np.shape(filler_items) != (n, n_items):
            raise JaxrecError(f"the gan attack needs filler_items of shape ({n}, {n_items})")
        chosen = np.asarray(filler_items) > 0
        chosen[:, t] = False
        r, items = np.nonzero(chosen)
    else:
        items = _uniform_items(rng, n, free, filler) if filler else np.zeros((n, 0), np.int64)
        r, items = np.broadcast_to(rows, items.shape).ravel(), items.ravel()
    if kind in ("average", "gan"):
        values = rng.normal(stats.item_mean[items], stats.item_std[items])
    else:
        values = rng.normal(stats.mean, stats.std, items.size)
    out[r, items] = np.clip(np.round(values), stats.low, stats.high)
    out[:, t] = stats.high if intent == "push" else stats.low
    return out
