"""Training sequence models on the engine: their data, losses, steps and epochs.

A sequence model trains on *windows* (:func:`jaxrec.data.sequences.training_windows`): the input
``history [B, L]`` and the next item at every position ``targets [B, L]`` (padding ``n_items``
where there is none). The losses (Kang & McAuley 2018; Klenitskiy & Vasilev 2023; Petrov &
Macdonald 2023) are per position and averaged over the real target positions of the batch:

* ``bce`` -- ``-log s(p) - sum_j log s(-n_j)`` with ``n_negatives`` sampled items per position
  (the SASRec code: 1 negative, not in the user's training items);
* ``ce`` -- softmax cross-entropy over the whole catalogue ("SASRec+"; RecBole's default);
* ``gbce`` -- gSASRec's ``(-beta log s(p) - sum_j log s(-n_j)) / (1 + k)`` with
  ``beta = alpha (t (1 - 1/alpha) + 1/alpha)``, ``alpha = k / (n_items - 1)``;
* a ``cloze`` model (BERT4Rec) masks items of the whole window and takes CE at the masked ones.

The step is :func:`jaxrec.train.steps.make_train_step`'s: the loss takes ``users = history``,
``items = [B, L, 1 + k]`` (target, then negatives) and the row mask, so the optimizer update,
dropout keys and metrics are the pair models' own.

**Length buckets.** Most histories are much shorter than ``max_len`` (Amazon Games: mean 7 of
50). Windows are grouped by length into buckets of widths ``widths`` (the last is ``max_len``);
an epoch shuffles each bucket's windows into whole batches with the one batching
(:func:`jaxrec.train.steps.shuffled_rows`), then shuffles the order of all the batches. A batch
is computed at the narrowest width holding its longest window (``lax.switch`` over the widths:
one compiled branch each, the same arrays). A narrower width computes exactly what the full
width computes on the real positions -- positions are those of the last slots and padding is
masked -- so ``widths=(max_len,)`` is the padded reference the buckets are tested against.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrec.data.interactions import Interactions
from jaxrec.data.preprocess import deduplicate
from jaxrec.data.sampling import PositiveSets, index_shuffle, positive_sets, search_depth, uniform_negatives
from jaxrec.data.sequences import training_windows
from jaxrec.errors import JaxrecError
from jaxrec.models.sequential import cloze
from jaxrec.train.parallel import constrain_batches
from jaxrec.train.steps import Batch, shuffled_rows

SEQUENCE_LOSSES = ("bce", "ce", "gbce")  #: ``train.loss`` of a sequence model
_SHUFFLE, _NEGATIVES, _ORDER, _CLOZE = 0, 1, 3, 4  # fold_in tags (2 is the step's dropout)


@chex.dataclass(frozen=True)
class SequenceData:
    """Training windows laid out bucket by bucket, each bucket padded to whole batches.

    Attributes:
      history, targets: ``[N_pad, L]`` int32 windows (padding ``n_items``).
      users: ``[N_pad]`` int32 the window's user (negatives avoid its training items).
      n_real: ``[n_buckets]`` int32 real windows per bucket (they come first in the bucket).
      positives: the users' training items, for negative sampling.
      inputs: ``{}`` (the engine's validation reads ``data.inputs``).
    """

    history: jax.Array
    targets: jax.Array
    users: jax.Array
    n_real: jax.Array
    positives: PositiveSets
    inputs: dict


def bucket_widths(buckets: Sequence[int], max_len: int) -> tuple[int, ...]:
    """The widths of the length buckets: those of ``buckets`` below ``max_len``, then ``max_len``."""
    return tuple(sorted({int(w) for w in buckets if 0 < int(w) < max_len})) + (int(max_len),)


def sequence_data(
    train: Interactions,
    order: str,
    max_len: int,
    batch_size: int,
    widths: Sequence[int],
    windows: str = "all",
    caps: Sequence[int] | None = None,
    pairs: int | None = None,
    search_steps: int | None = None,
) -> tuple[SequenceData, tuple[int, ...]]:
    """Windows of ``train`` grouped into the buckets of ``widths``; returns the data and each
    bucket's capacity (rows, a multiple of ``batch_size``; 0 for an empty bucket).

    Data variants of one shape (members that train on their own data, e.g. poisoned training
    sets): ``caps`` pads bucket ``b`` to ``caps[b]`` rows (at least its own whole batches; a
    multiple of ``batch_size``), ``pairs`` and ``search_steps`` pad the positive sets
    (:func:`~jaxrec.data.sampling.positive_sets`); :func:`sequence_shape` gives the three for a
    list of training sets."""
    users, hist, tgt, bucket = _windows(train, order, max_len, widths, windows)
    parts, out_caps, n_real = [], [], []
    for b in range(len(widths)):
        rows = np.flatnonzero(bucket == b)
        cap = math.ceil(rows.size / batch_size) * batch_size
        if caps is not None:
            if caps[b] < cap or caps[b] % batch_size:
                raise JaxrecError(f"{train.source}: bucket {b} needs {cap} rows, more than its capacity {caps[b]}")
            cap = int(caps[b])
        pad = cap - rows.size
        parts.append(np.concatenate([rows, np.full(pad, -1)]))  # -1: a padding row
        out_caps.append(cap)
        n_real.append(rows.size)
    idx = np.concatenate(parts).astype(np.int64)
    fill = idx < 0
    take = np.where(fill, 0, idx)
    hist_p = np.where(fill[:, None], train.n_items, hist[take])
    tgt_p = np.where(fill[:, None], train.n_items, tgt[take])
    data = SequenceData(
        history=jnp.asarray(hist_p, jnp.int32),
        targets=jnp.asarray(tgt_p, jnp.int32),
        users=jnp.asarray(np.where(fill, 0, users[take]), jnp.int32),
        n_real=jnp.asarray(n_real, jnp.int32),
        positives=positive_sets(deduplicate(train), capacity=pairs, search_steps=search_steps),
        inputs={},
    )
    return data, tuple(out_caps)


def sequence_shape(
    trains: Sequence[Interactions], order: str, max_len: int, batch_size: int, widths: Sequence[int], windows: str
) -> dict:
    """``{caps, pairs, search_steps}`` of :func:`sequence_data` that fit every training set of
    ``trains``: each bucket's largest whole batches, the most distinct pairs, the deepest search."""
    caps, pairs, steps = np.zeros(len(widths), np.int64), 0, 0
    for t in trains:
        counts = np.bincount(_windows(t, order, max_len, widths, windows)[3], minlength=len(widths))
        caps = np.maximum(caps, -(-counts // batch_size) * batch_size)
        d = deduplicate(t)
        pairs, steps = max(pairs, len(d)), max(steps, search_depth(d))
    return {"caps": tuple(int(c) for c in caps), "pairs": pairs, "search_steps": steps}


def _windows(train: Interactions, order: str, max_len: int, widths: Sequence[int], windows: str):
    """``(users, history, targets, bucket)`` of ``train``'s windows, ``bucket [N]`` the narrowest
    of ``widths`` holding each window."""
    users, hist, tgt = training_windows(train, order, max_len, windows)
    if users.size == 0:
        raise JaxrecError(f"{train.source}: no user has 2 training events (nothing to predict)")
    length = np.sum(hist != train.n_items, axis=1)
    return users, hist, tgt, np.searchsorted(np.asarray(widths), length)


def gbce_beta(k: int, n_items: int, t: float) -> float:
    """gSASRec's calibration exponent ``beta = alpha (t (1 - 1/alpha) + 1/alpha)``,
    ``alpha = k / (n_items - 1)`` (Petrov & Macdonald, RecSys 2023)."""
    alpha = k / max(n_items - 1, 1)
    return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)


def position_losses(loss: str, pos, neg, beta: float = 1.0):
    """Per-position loss of ``pos [B, L]`` and ``neg [B, L, k]`` scores (``bce``, ``gbce``)."""
    neg_term = -jnp.sum(jax.nn.log_sigmoid(-neg), axis=-1)
    if loss == "bce":
        return -jax.nn.log_sigmoid(pos) + neg_term
    if loss == "gbce":
        return (-beta * jax.nn.log_sigmoid(pos) + neg_term) / (1 + neg.shape[-1])
    raise JaxrecError(f"unknown sequence loss {loss!r}; choose one of {SEQUENCE_LOSSES}")


def make_position_losses(model, loss: str, beta: float = 1.0) -> Callable:
    """``per(variables, history [B, w], items [B, w, 1 + k], key, embedded=None, train=True) ->
    [B, w]``: the loss at every position (padding included: weigh it with the target mask).
    ``embedded [B, w, D]``: the input rows to encode instead of the model's ``embed(history)``
    (perturbed or mixed inputs: :mod:`jaxrec.adversarial.windows`); ``key`` drives dropout."""
    pad = model.n_items

    def per(variables, history, items, key, embedded=None, train=True):
        rngs = {"dropout": key}
        if loss == "ce":
            logits = model.apply(variables, history, train=train, method="logits", rngs=rngs, embedded=embedded)
            labels = jnp.where(items[..., 0] == pad, 0, items[..., 0])
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        scores = model.apply(variables, history, items, train=train, method="score", rngs=rngs, embedded=embedded)
        return position_losses(loss, scores[..., 0], scores[..., 1:], beta)

    return per


def make_sequence_loss_fn(
    model, loss: str, widths: Sequence[int], beta: float = 1.0, objective: Callable | None = None
) -> Callable:
    """``loss_fn(params, inputs, history [B, L], items [B, L, 1 + k], mask [B], key, hparams)``
    for :func:`jaxrec.train.steps.make_train_step`: the mean loss over the real target
    positions, computed at the narrowest of ``widths`` that holds the batch's longest window.

    ``objective(per, variables, history [B, w], items [B, w, 1 + k], weights [B, w], key,
    hparams) -> (total, {name: sum})`` replaces the plain sum of the weighted position losses at
    each width (``per``: :func:`make_position_losses`); its total and sums are divided by the
    real target positions (adversarial objectives: :mod:`jaxrec.adversarial.windows`)."""
    pad = model.n_items
    widths = tuple(widths)
    per = make_position_losses(model, loss, beta)

    def at_width(w):
        def total(variables, history, items, weights, key, hparams):
            h, it, wt = history[:, -w:], items[:, -w:], weights[:, -w:]
            if objective is None:
                return jnp.sum(per(variables, h, it, key) * wt), {}
            return objective(per, variables, h, it, wt, key, hparams)

        return total

    branches = [at_width(w) for w in widths]

    def loss_fn(params, inputs, history, items, mask, key, hparams):
        if model.objective == "cloze":  # the whole window, items masked (Sun et al. 2019)
            window = jnp.concatenate([history[:, 1:], items[:, -1:, 0]], axis=1)
            window = jnp.where(mask[:, None] > 0, window, pad)
            history, labels = cloze(jax.random.fold_in(key, _CLOZE), window, pad, model.mask_token, model.mask_prob)
            items = labels[..., None]
        weights = (items[..., 0] != pad) * mask[:, None]
        args = ({**params, **inputs}, history, items, weights, key, hparams)
        if len(branches) == 1:
            total, sums = branches[0](*args)
        else:
            longest = jnp.max(jnp.sum(history != pad, axis=1))
            total, sums = jax.lax.switch(jnp.searchsorted(jnp.asarray(widths), longest), branches, *args)
        count = jnp.maximum(jnp.sum(weights), 1.0)
        value = total / count
        return value, {"loss": value, "rank_loss": value, **{k: v / count for k, v in sums.items()}}

    return loss_fn


def make_sequence_epoch(step: Callable, batch_size: int, caps: Sequence[int], n_negatives: int) -> Callable:
    """``epoch(state, data: SequenceData) -> (state, metrics)``: one ``lax.scan`` of ``step``.

    Each bucket's real windows are shuffled into its whole batches (:func:`shuffled_rows`), the
    batches of all buckets are shuffled together (:func:`index_shuffle` of the batches holding
    real windows, padding batches behind them: :func:`batch_ranks`), and every step
    gathers its windows and draws ``n_negatives`` items per position, not among the user's
    training items (0: none, for ``ce`` and ``cloze``), from ``fold_in(state.key, step)``.
    """
    caps = tuple(int(c) for c in caps)

    def seq_step(state, batch, data: SequenceData):
        idx, mask = batch
        history, targets = data.history[idx], data.targets[idx]
        items = targets[..., None]
        if n_negatives > 0:
            key = jax.random.fold_in(jax.random.fold_in(state.key, state.step), _NEGATIVES)
            B, L = targets.shape
            users = jnp.repeat(data.users[idx], L)
            neg = uniform_negatives(key, data.positives, users, n_negatives).reshape(B, L, n_negatives)
            items = jnp.concatenate([items, neg], axis=-1)
        return step(state, Batch(history, items, mask), data)

    def epoch(state, data: SequenceData):
        key = jax.random.fold_in(state.key, state.step)
        index, masks, start = [], [], 0
        for b, cap in enumerate(caps):
            if cap:
                perm, m = shuffled_rows(
                    jax.random.fold_in(jax.random.fold_in(key, _SHUFFLE), b), data.n_real[b], cap, batch_size
                )
                index.append(perm + start)
                masks.append(m)
            start += cap
        index, masks = jnp.concatenate(index), jnp.concatenate(masks)
        real, rank = batch_ranks(data.n_real, caps, batch_size)
        order = jnp.zeros_like(rank).at[rank].set(jnp.arange(rank.size))  # rank -> batch
        order = order[index_shuffle(jax.random.fold_in(key, _ORDER), real, rank.size)]
        batches = constrain_batches((index[order], masks[order]))  # B over a mesh's "data" axis
        return jax.lax.scan(lambda s, b: seq_step(s, b, data), state, batches)

    return epoch


def batch_ranks(n_real, caps: Sequence[int], batch_size: int) -> tuple[jax.Array, jax.Array]:
    """``(R, rank [n_batches])``: the ``R`` batches holding real windows (``n_real [n_buckets]``
    real windows at the start of buckets of ``caps`` rows) ranked ``0 .. R - 1`` bucket by bucket,
    the padding-only batches ``R ..`` behind them. The epoch shuffles ranks, not batches, so the
    real batches' order depends on ``n_real`` only: a data variant padded to larger ``caps``
    (members with their own data) trains as it would alone, its padding batches skipped steps."""
    ranks, r_total = [], 0
    for b, cap in enumerate(caps):
        if cap:
            j = jnp.arange(cap // batch_size)
            r = -(-n_real[b] // batch_size)  # batches holding real windows
            ranks.append(jnp.where(j < r, r_total + j, -1))
            r_total = r_total + r
    rank = jnp.concatenate(ranks)
    pad = rank < 0
    return r_total, jnp.where(pad, r_total + jnp.cumsum(pad) - 1, rank)
