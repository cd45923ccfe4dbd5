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
  CIKM 2020 / TKDE 2022), rated as ``average`` -- or, given ``filler_ratings``, with the
  generator's own ratings of its chosen items (rounded, clipped to the range).

The filler size is one number for all profiles or one per profile (e.g. following the real users'
empirical profile lengths); bandwagon's ``selected`` items count in each profile's filler.

Targets are rated at the maximum (``push``) or the minimum (``nuke``); with no targets, no item is
forced (e.g. to compare the attacks' realism without a target). Ratings are clipped to the
range and rounded. Everything here is numpy and seeded: the same seed gives the same profiles.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from jaxrec.attacks.profiles import uniform_items
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
    return RatingStats(
        mean, std, float(r.min()), float(r.max()), item_mean, item_std, count, float(users[users > 0].mean())
    )


def profile_seed(seed: int, kind: str) -> int:
    """The random stream of ``kind``'s profiles for a study seed: one seed per (seed, kind), shared
    by every study that draws them (the attack study, the GAN's comparison)."""
    return 7919 * seed + KINDS.index(kind)


def fake_profiles(
    kind: str,
    n: int,
    stats: RatingStats,
    targets: Sequence[int],
    filler: int | np.ndarray,
    seed: int,
    intent: str = "push",
    selected: int = 10,
    filler_items: np.ndarray | None = None,
    filler_ratings: np.ndarray | None = None,
) -> np.ndarray:
    """``n`` rated fake profiles of an attack ``kind`` (see the module docstring).

    Args:
      targets: item indices every profile rates at the maximum (push) or the minimum (nuke); may be
        empty (no forced item).
      filler: items per profile besides the targets (bandwagon: selected + filler = ``filler``):
        one int for all profiles, or an int array ``[n]`` of per-profile sizes, each in
        ``[1, non-target items]`` (bandwagon: each ``>= selected``).
      selected: bandwagon's popular items.
      filler_items: ``[n, n_items]`` 0/1 filler chosen by the GAN (``kind="gan"`` only); target
        items in it are ignored.
      filler_ratings: ``[n, n_items]`` the GAN generator's ratings (``kind="gan"`` only, optional):
        the chosen filler items take these, rounded and clipped to the rating range, instead of
        the ``average`` draw; ``None``: as ``average``.
    Returns ``[n, n_items]`` float32 ratings, 0 where a profile rates nothing.
    """
    if kind not in KINDS:
        raise JaxrecError(f"unknown attack {kind!r}; choose one of {list(KINDS)}")
    if intent not in INTENTS:
        raise JaxrecError(f"unknown attack intent {intent!r}; choose one of {list(INTENTS)}")
    n_items = stats.item_mean.size
    t = np.unique(np.asarray(list(targets), np.int64))
    if t.size and (t.min() < 0 or t.max() >= n_items):
        raise JaxrecError(f"target items must be indices in [0, {n_items}), got {list(targets)}")
    per_row = np.ndim(filler) != 0
    if per_row:
        sizes = np.asarray(filler)
        if sizes.shape != (n,) or not np.issubdtype(sizes.dtype, np.integer):
            raise JaxrecError(
                f"per-profile filler sizes must be an int array of shape ({n},), "
                f"got {sizes.dtype} of shape {sizes.shape}"
            )
        if n < 1 or sizes.min() < 1:
            raise JaxrecError(
                f"an attack needs >= 1 fake user and >= 1 filler item, got {n} and filler sizes {sizes.tolist()}"
            )
        if sizes.max() > n_items - t.size:
            raise JaxrecError(f"filler sizes up to {int(sizes.max())} exceed the {n_items - t.size} non-target items")
        sizes = sizes.astype(np.int64)
        least = int(sizes.min())
    else:
        if n < 1 or filler < 1:
            raise JaxrecError(f"an attack needs >= 1 fake user and >= 1 filler item, got {n} and {filler}")
        if filler > n_items - t.size:
            raise JaxrecError(f"filler size {filler} exceeds the {n_items - t.size} non-target items")
        sizes = np.full(n, filler, np.int64)
        least = filler
    if filler_ratings is not None:
        if kind != "gan":
            raise JaxrecError(f"filler_ratings are for the gan attack only, not {kind!r}")
        if np.shape(filler_ratings) != (n, n_items):
            raise JaxrecError(f"gan: filler_ratings must have shape ({n}, {n_items}), got {np.shape(filler_ratings)}")
    rng = np.random.default_rng(seed)
    out = np.zeros((n, n_items), np.float32)
    free = np.setdiff1d(np.arange(n_items), t)
    if kind == "bandwagon":
        if not 0 < selected <= least:
            raise JaxrecError(
                f"bandwagon: selected items must be in [1, filler={least}], got {selected}"
                + (" (the smallest per-profile filler size)" if per_row else "")
            )
        by_pop = free[np.argsort(-stats.popularity[free], kind="stable")]
        popular, free = by_pop[:selected], by_pop[selected:]
        out[:, popular] = stats.high
        sizes = sizes - selected
    if kind == "gan":
        if filler_items is None or np.shape(filler_items) != (n, n_items):
            raise JaxrecError(f"the gan attack needs filler_items of shape ({n}, {n_items})")
        chosen = np.asarray(filler_items) > 0
        chosen[:, t] = False
        r, items = np.nonzero(chosen)
    else:
        r, items = uniform_items(rng, n, free, sizes)
    if filler_ratings is not None:
        values = np.asarray(filler_ratings, np.float64)[r, items]
        if not np.all(np.isfinite(values)):
            raise JaxrecError("gan: filler_ratings must be finite on the chosen filler items")
    elif kind in ("average", "gan"):
        values = rng.normal(stats.item_mean[items], stats.item_std[items])
    else:
        values = rng.normal(stats.mean, stats.std, items.size)
    out[r, items] = np.clip(np.round(values), stats.low, stats.high)
    out[:, t] = stats.high if intent == "push" else stats.low
    return out


def given_profiles(
    items: np.ndarray,
    stats: RatingStats,
    targets: Sequence[int],
    seed: int = 0,
    intent: str = "push",
    rating: float | None = None,
) -> np.ndarray:
    """Rated profiles whose filler items were chosen elsewhere (an optimized attack): ``items [n,
    n_items]`` 0/1 (targets in it are ignored), every filler item rated ``rating`` (default: the
    maximum, so that it stays a positive after thresholding, as the attack assumed), the targets at
    the maximum (push) or the minimum (nuke). Rows without filler stay empty."""
    items = np.asarray(items) > 0
    out = np.zeros(items.shape, np.float32)
    live = items.any(1)
    if live.any():
        filler = np.asarray(items[live].sum(1) - items[live][:, np.asarray(list(targets), np.int64)].sum(1), np.int64)
        value = np.full(items.shape, stats.high if rating is None else rating, np.float32)
        out[live] = fake_profiles(
            "gan",
            int(live.sum()),
            stats,
            targets,
            np.maximum(filler, 1),
            seed,
            intent,
            filler_items=items[live].astype(np.float32),
            filler_ratings=value[live],
        )
    return out
