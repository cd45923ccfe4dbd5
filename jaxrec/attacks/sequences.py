"""Fake sequences: injected users whose ordered histories push target items into a sequence
model's next-item predictions, the heuristic baselines of poisoning sequential recommenders
(as in Yue et al., RecSys 2021, "Black-box attacks on sequential recommenders via data-free
model extraction"; the layout here, a target at every second event, is jaxrec's own).

A fake sequence is a row of ``[n, max_len]`` int32 item indices, ``-1`` after its last event.
Its length is drawn from the real users' training lengths (clipped to the victim's ``max_len``:
a longer history is cut into windows of it anyway) or fixed; every second event is a target
(cycling through the targets), the others are *filler*:

* ``random`` -- filler drawn uniformly among the non-target items;
* ``popular`` -- filler drawn in proportion to the items' training popularity;
* ``bandwagon`` -- filler drawn uniformly among the ``selected`` most popular items (the
  shilling bandwagon attack, Mobasher et al. TOIT 2007, as a sequence: popular item, target).

So a fake of length L carries ``L // 2`` transitions *into* a target. The optimized kind
(:mod:`jaxrec.attacks.transitions`) chooses the items before the targets instead.
:func:`inject_sequences` appends fakes to the real training events in their order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jaxrec.data.interactions import Interactions
from jaxrec.data.loaders import concat
from jaxrec.errors import JaxrecError

SEQUENCE_KINDS = ("random", "popular", "bandwagon")  #: the heuristic fake sequences
SEQUENCE_ATTACKS = (*SEQUENCE_KINDS, "transition")  #: and the optimized one (:mod:`jaxrec.attacks.transitions`)


def fake_lengths(
    rng: np.random.Generator, real_lengths: np.ndarray, n: int, max_len: int, fixed: int = 0
) -> np.ndarray:
    """``[n]`` lengths: ``fixed`` when > 0, else drawn from the real users' ``real_lengths``
    (those >= 2), every one clipped to ``max_len``; at least 2 (one filler, one target)."""
    if fixed:
        if fixed > max_len:
            raise JaxrecError(f"filler: a fake length of {fixed} is above the victim's max_len {max_len}")
        return np.full(n, max(fixed, 2), np.int64)
    real = np.asarray(real_lengths)
    real = real[real >= 2]
    if real.size == 0:
        raise JaxrecError("no real user has 2 training events to copy a fake length from")
    return np.minimum(real[rng.integers(0, real.size, n)], max_len).astype(np.int64)


def interleave(filler: np.ndarray, lengths: np.ndarray, targets: Sequence[int], max_len: int) -> np.ndarray:
    """``[n, max_len]`` sequences: row r's first ``lengths[r]`` events alternate filler (even
    positions, ``filler[r, 0], filler[r, 1], ...``) and targets (odd positions, cycling through
    ``targets`` from a row-dependent start), ``-1`` after. ``filler [n, >= ceil(max_len / 2)]``."""
    n = lengths.size
    pos = np.arange(max_len)
    t = np.asarray(targets, np.int64)
    which = (pos[None, :] // 2 + np.arange(n)[:, None]) % t.size
    out = np.where(pos[None, :] % 2 == 1, t[which], filler[:, pos // 2])
    return np.where(pos[None, :] < lengths[:, None], out, -1).astype(np.int32)


def fake_sequences(
    kind: str,
    n: int,
    real_lengths: np.ndarray,
    popularity: np.ndarray,
    targets: Sequence[int],
    seed: int,
    max_len: int,
    selected: int = 10,
    fixed: int = 0,
) -> np.ndarray:
    """``[n, max_len]`` fake sequences of a heuristic ``kind`` (see the module docstring).

    Args:
      real_lengths: ``[U]`` the real users' training lengths; popularity: ``[n_items]`` training
        counts; targets: item indices; fixed: a fixed length (0: drawn).
    """
    if kind not in SEQUENCE_KINDS:
        raise JaxrecError(f"unknown fake-sequence kind {kind!r}; choose one of {list(SEQUENCE_KINDS)}")
    rng = np.random.default_rng(seed)
    lengths = fake_lengths(rng, real_lengths, n, max_len, fixed)
    n_items = popularity.size
    pool = np.setdiff1d(np.arange(n_items), np.asarray(targets))
    width = -(-max_len // 2)
    if kind == "random":
        filler = rng.choice(pool, (n, width))
    elif kind == "popular":
        p = popularity[pool].astype(np.float64) + 1e-12
        filler = rng.choice(pool, (n, width), p=p / p.sum())
    else:
        top = pool[np.argsort(-popularity[pool], kind="stable")[: max(1, selected)]]
        filler = rng.choice(top, (n, width))
    return interleave(filler, lengths, targets, max_len)


def inject_sequences(train: Interactions, seqs: np.ndarray, first_slot: int) -> Interactions:
    """``train`` plus the fake sequences ``seqs [k, L]`` (``-1``: no event) as users
    ``first_slot .. first_slot + k - 1`` of ``train``'s widened id space, in their order: their
    rows follow the real ones and, with timestamps, carry ``0, 1, ...`` (a user's events are
    ordered within the user only)."""
    s = np.asarray(seqs)
    if s.ndim != 2:
        raise JaxrecError(f"fake sequences must be [k, L], got shape {s.shape}")
    if first_slot + s.shape[0] > train.n_users:
        raise JaxrecError(f"{s.shape[0]} fake sequences from user {first_slot} exceed the {train.n_users} user slots")
    if np.any(train.users >= first_slot):
        raise JaxrecError(f"{train.source}: users from {first_slot} on already have interactions")
    if np.any(s >= train.n_items):
        raise JaxrecError(f"fake sequences name item {int(s.max())}, but there are {train.n_items} items")
    rows, pos = np.nonzero(s >= 0)
    fakes = Interactions(
        rows + first_slot,
        s[rows, pos],
        train.n_users,
        train.n_items,
        ratings=None if train.ratings is None else np.ones(rows.size, train.ratings.dtype),
        timestamps=None if train.timestamps is None else pos.astype(train.timestamps.dtype),
        user_ids=train.user_ids,
        item_ids=train.item_ids,
        source="fake-sequences",
    )
    return concat([train, fakes], source=f"{train.source}+fakes")
