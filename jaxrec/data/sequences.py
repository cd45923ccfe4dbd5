"""Per-user event sequences as fixed-shape arrays: the data of sequence models (SASRec and kin).

A split's parts (:func:`jaxrec.data.split.leave_one_out`) hold rows; a sequence model reads each
user's events in order (``split.info["order"]``: by time, or the file's own order). Here they
become right-aligned windows of ``max_len`` item ids, padded on the left with the reserved id
``pad = n_items`` (never one of the ``n_items`` scored items):

* :func:`histories` -- the query of each user at evaluation time: the most recent ``max_len``
  events of the given parts (training for validation, training + validation for test);
* :func:`training_windows` -- the training examples: each user's training events, cut into
  windows from the most recent backwards, input ``x[t]`` and target ``x[t + 1]`` at every
  position (the last ``max_len`` events only with ``windows="last"``, as the SASRec code does).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jaxrec.data.interactions import Interactions, Split
from jaxrec.data.loaders import concat
from jaxrec.data.split import event_order
from jaxrec.errors import JaxrecError

WINDOWS = ("all", "last")  #: which training events become windows (:func:`training_windows`)


def split_order(split: Split) -> str:
    """The event order a split was made with (``time`` unless it says ``file``)."""
    return str(split.info.get("order", "time"))


def ordered_items(parts: Sequence[Interactions], order: str) -> tuple[np.ndarray, np.ndarray]:
    """The events of ``parts`` (one id space, concatenated in the given order: a later part's
    events come after an earlier part's) as a CSR: ``indptr [n_users + 1]``, ``items [N]``, each
    user's items in event order."""
    parts = [p for p in parts if p is not None]
    inter = concat(parts) if len(parts) > 1 else parts[0]
    part_of = np.concatenate([np.full(len(p), i, np.int64) for i, p in enumerate(parts)])
    if order == "time" and inter.timestamps is not None:
        idx = event_order(inter, "time")
        # parts come one after the other: within a user, a part's rows follow the earlier parts'
        idx = idx[np.lexsort((np.arange(idx.size), part_of[idx], inter.users[idx]))]
    else:
        idx = (
            np.lexsort((np.arange(len(inter)), part_of, inter.users)) if order == "file" else event_order(inter, order)
        )
    counts = np.bincount(inter.users, minlength=inter.n_users)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return indptr, inter.items[idx].astype(np.int32)


def right_aligned(indptr: np.ndarray, items: np.ndarray, ends: np.ndarray, rows: np.ndarray, max_len: int, pad: int):
    """``[len(rows), max_len]`` windows: row ``r`` holds ``items[max(start, end - max_len):end]``
    of user ``rows[r]``'s CSR slice (``end = ends[r]`` absolute), right-aligned, ``pad`` before."""
    starts = indptr[rows]
    lo = np.maximum(starts, ends - max_len)
    n = ends - lo
    out = np.full((rows.size, max_len), pad, np.int32)
    r = np.repeat(np.arange(rows.size), n)
    col = max_len - np.repeat(n, n) + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
    out[r, col] = items[np.repeat(lo, n) + (col - (max_len - np.repeat(n, n)))]
    return out


def histories(parts: Sequence[Interactions], order: str, max_len: int) -> np.ndarray:
    """``[n_users, max_len]`` int32: each user's most recent ``max_len`` events of ``parts``
    (right-aligned; padding ``n_items``). A user without events is all padding."""
    if max_len < 1:
        raise JaxrecError(f"max_len must be >= 1, got {max_len}")
    first = next(p for p in parts if p is not None)
    indptr, items = ordered_items(parts, order)
    users = np.arange(first.n_users)
    return right_aligned(indptr, items, indptr[1:], users, max_len, first.n_items)


def training_windows(train: Interactions, order: str, max_len: int, windows: str = "all"):
    """The training examples of a sequence model.

    Each user's ``n`` training events give inputs ``e[0..n-2]`` and targets ``e[1..n-1]`` (the
    next item at every position). ``windows="all"`` cuts them into windows of ``max_len``
    positions from the most recent backwards (every event is a target once); ``"last"`` keeps
    the most recent window only (the SASRec code's sampler). Users with fewer than 2 events
    give nothing.

    Returns ``(users [W], inputs [W, max_len], targets [W, max_len])`` int32, right-aligned and
    padded with ``n_items`` (in ``targets``, padding marks the positions without a loss).
    """
    if windows not in WINDOWS:
        raise JaxrecError(f"unknown training windows {windows!r}; choose one of {WINDOWS}")
    indptr, items = ordered_items([train], order)
    counts = np.diff(indptr)
    n_targets = np.maximum(counts - 1, 0)  # positions with a next item
    per_user = -(-n_targets // max_len) if windows == "all" else (n_targets > 0).astype(np.int64)
    users = np.repeat(np.arange(train.n_users), per_user)
    k = np.arange(users.size) - np.repeat(np.cumsum(per_user) - per_user, per_user)  # 0 = most recent
    ends = indptr[users + 1] - k * max_len  # exclusive end of the targets (absolute)
    # a window's targets are items[end - max_len .. end), its inputs one step earlier; the
    # inputs never reach before the user's first event
    starts = indptr[users]
    tgt = right_aligned(indptr, items, ends, users, max_len, train.n_items)
    inp = right_aligned(indptr, items, ends - 1, users, max_len, train.n_items)
    # a target needs an input: drop targets whose input slot is padding (the user's first event)
    short = (ends - starts) <= max_len  # the window reaches the user's first event
    first_slot = max_len - (ends - starts)  # column of the user's first event among the targets
    cols = np.arange(max_len)
    tgt = np.where(short[:, None] & (cols[None, :] <= first_slot[:, None]), train.n_items, tgt)
    return users.astype(np.int32), inp, tgt.astype(np.int32)
