"""Pure training steps and whole epochs as one ``lax.scan``.

``step(state, batch, data) -> (state, metrics)`` and ``epoch(state, data) -> (state, metrics)``
are pure: the training pairs, the positive sets used for negative sampling and the model's
non-trainable inputs (e.g. LightGCN's graph) all come in as the array pytree :class:`TrainData`,
so the epoch can be vmapped over states (seeds, hyper-parameters) and over padded data sets, and
sharded across devices. Randomness is ``fold_in(state.key, state.step)`` -- independent of the
number of devices and of where a run was interrupted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.data.interactions import Interactions
from jaxrec.data.sampling import PositiveSets, index_shuffle, positive_sets, sample_negatives
from jaxrec.errors import JaxrecError
from jaxrec.models.base import batch_l2
from jaxrec.models.propagation import normalise_inputs
from jaxrec.train.losses import get_loss
from jaxrec.train.parallel import constrain_batches
from jaxrec.train.rowwise import join_params, split_params, touched
from jaxrec.train.state import TrainState

_SHUFFLE, _NEGATIVES, _DROPOUT = 0, 1, 2  # fold_in tags separating the random streams


@chex.dataclass(frozen=True)
class TrainData:
    """Training pairs padded to a fixed capacity, positive sets and model inputs (all arrays).

    Attributes:
      users, items: ``[N_pad]`` int32 positive pairs, the real ones first; ``N_pad`` is a
        multiple of the batch size (a capacity shared by data variants of one shape).
      mask: ``[N_pad]`` float32, 1 for real pairs and 0 for padding (a padding pair weighs 0 in
        the loss and in the L2 term; a batch of padding only is no optimizer step).
      n_real: ``[]`` int32, the number of real pairs (the shuffle permutes only those, so a
        variant padded to a larger capacity shuffles its real pairs exactly as unpadded).
      positives: :class:`PositiveSets` for negative sampling.
      inputs: the model's non-trainable variable collections (``{}`` for MF).
    """

    users: jax.Array
    items: jax.Array
    mask: jax.Array
    n_real: jax.Array
    positives: PositiveSets
    inputs: dict

    @property
    def n_pairs(self) -> int:
        return self.users.shape[-1]


def train_data(
    train: Interactions,
    batch_size: int,
    inputs: dict | None = None,
    popularity_alpha: float | None = None,
    capacity: int | None = None,
    search_steps: int | None = None,
) -> TrainData:
    """Pad ``train``'s (deduplicated) pairs to whole batches and move them to device.

    Args:
      capacity: pad to at least this many pairs (rounded up to whole batches), so that data
        variants of different sizes share one shape and stack (:func:`stack_data`); default: the
        pairs themselves.
      search_steps: the positive sets' binary-search depth (default: this data's own); give the
        largest of the variants to stack.
    """
    if batch_size < 1:
        raise JaxrecError(f"batch size must be >= 1, got {batch_size}")
    indptr, items = train.csr()
    users = np.repeat(np.arange(train.n_users, dtype=np.int32), np.diff(indptr))
    if users.size == 0:
        raise JaxrecError(f"{train.source}: no training interactions")
    if capacity is not None and capacity < users.size:
        raise JaxrecError(f"{train.source}: {users.size} training pairs exceed the capacity {capacity}")
    size = max(users.size, capacity or 0)
    n_pad = math.ceil(size / batch_size) * batch_size - users.size
    pad = lambda a, v: np.concatenate([a, np.full(n_pad, v, a.dtype)])  # noqa: E731
    return TrainData(
        users=jnp.asarray(pad(users, 0)),
        items=jnp.asarray(pad(items, 0)),
        mask=jnp.asarray(pad(np.ones(users.size, np.float32), 0.0)),
        n_real=jnp.asarray(users.size, jnp.int32),
        positives=positive_sets(train, popularity_alpha, capacity=size, search_steps=search_steps),
        inputs=dict(inputs or {}),
    )


def stack_data(datas: list[TrainData]) -> TrainData:
    """Data variants of one shape (same capacity, search depth and input shapes) stacked along a
    leading member axis, for members that train on different data."""
    shapes = {jax.tree.map(jnp.shape, d).__repr__() for d in datas}
    steps = {d.positives.search_steps for d in datas}
    if len(shapes) != 1 or len(steps) != 1:
        raise JaxrecError(
            "data variants differ in shape: build them with one capacity, search_steps and graph "
            "capacity (train_data(..., capacity=, search_steps=))"
        )
    return jax.tree.map(lambda *xs: jnp.stack(xs), *datas)


class Batch(NamedTuple):
    """``users [B]``, ``items [B, 1 + n]`` (positive, then sampled negatives), ``mask [B]``."""

    users: jax.Array
    items: jax.Array
    mask: jax.Array


def make_example_losses(model, loss: str = "bpr") -> Callable:
    """``losses(params, inputs, users [B], items [B, 1 + n], key, cache=None) -> [B]``: each
    example's ranking loss (padding rows included: weigh them with the batch's mask). ``cache``:
    the model's final representations to score with (``model.embeddings()``; computed from
    ``params`` when None)."""
    per_example = get_loss(loss)

    def losses(params, inputs, users, items, key, cache=None):
        scores = model.apply(
            {**params, **inputs}, users, items, cache=cache, train=True, method="score", rngs={"dropout": key}
        )
        return per_example(scores[:, 0], scores[:, 1:])

    return losses


def make_loss_fn(model, loss: str = "bpr", with_l2: bool = False) -> Callable:
    """``loss_fn(params, inputs, users [B], items [B, 1 + n], mask [B], key, hparams) -> (loss, aux)``.

    ``items[:, 0]`` are positives, the rest sampled negatives; with ``with_l2`` the weight
    ``hparams["l2"]`` (an array, so members may differ) multiplies :func:`batch_l2` on the
    batch's layer-0 embeddings (``with_l2`` is structural: off, the term is not computed). Scores
    come from one ``model.score`` call, so shared work (LightGCN's propagation) happens once per
    step. Padding rows (``mask`` 0) weigh nothing.
    """
    per_example = make_example_losses(model, loss)

    def loss_fn(params, inputs, users, items, mask, key, hparams):
        rank_loss = jnp.sum(per_example(params, inputs, users, items, key) * mask) / jnp.maximum(jnp.sum(mask), 1.0)
        total = rank_loss
        if with_l2:
            total = total + hparams["l2"] * batch_l2(params, users, items, mask)
        return total, {"loss": total, "rank_loss": rank_loss}

    return loss_fn


def make_train_step(loss_fn: Callable, skip_empty: bool = False, rows: bool = False) -> Callable:
    """``step(state, batch, data) -> (state, metrics)``: one optimizer update on ``batch``.

    ``loss_fn`` has the signature of :func:`make_loss_fn`'s result (APR and other adversarial
    objectives plug in here); it gets ``state.hparams`` plus ``"step"`` (the optimizer step); the
    dropout key is ``fold_in(state.key, step)``. With ``skip_empty`` (data padded beyond its last real batch) a
    batch without real rows leaves the state unchanged, step counter included. ``metrics`` always
    holds ``batch`` (1.0 for an update, 0.0 for a skipped batch). Jit it with ``donate_argnums=0``.

    ``rows`` (a row-wise optimizer, :class:`~jaxrec.train.rowwise.RowWise`, on a row-local
    model): the step gathers the rows the batch touches into a *view* of the tables (one slot per
    user entry and per item entry of the batch, :func:`~jaxrec.train.rowwise.touched`),
    evaluates ``loss_fn`` -- built on the model cloned to the view's sizes,
    :func:`view_model` -- on the view with the batch re-indexed into it, differentiates with
    respect to the view and scatters the update back (``state.tx.apply_rows``): no table-sized
    array is computed.
    """

    def update(state: TrainState, batch: Batch, data: TrainData):
        key = jax.random.fold_in(jax.random.fold_in(state.key, state.step), _DROPOUT)
        hparams = {**state.hparams, "step": state.step}  # the optimizer step, for schedules
        if not rows:
            grads, aux = jax.grad(loss_fn, has_aux=True)(
                state.params, data.inputs, batch.users, batch.items, batch.mask, key, hparams
            )
            return state.apply_gradients(grads=grads), {**aux, "batch": jnp.float32(1.0)}
        slots = state.opt_state.slots
        u_rows, users, u_slots = touched(batch.users, batch.mask, slots["user"])
        real = jnp.broadcast_to(batch.mask[:, None], batch.items.shape).reshape(-1)
        i_rows, items, i_slots = touched(batch.items.reshape(-1), real, slots["item"])
        items = items.reshape(batch.items.shape)
        tables, rest = split_params(state.params)
        idx = {k: u_rows if k.startswith("user") else i_rows for k in tables}
        view = join_params({k: t.at[idx[k]].get(mode="fill", fill_value=0) for k, t in tables.items()}, rest)
        grads, aux = jax.grad(loss_fn, has_aux=True)(view, data.inputs, users, items, batch.mask, key, hparams)
        new_slots = {"user": u_slots, "item": i_slots}
        params, opt_state = state.tx.apply_rows(state.params, state.opt_state, grads, idx, new_slots)
        new = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        return new, {**aux, "batch": jnp.float32(1.0)}

    if not skip_empty:
        return update

    def step(state: TrainState, batch: Batch, data: TrainData):
        def skip(state, batch, data):
            shapes = jax.eval_shape(update, state, batch, data)[1]
            return state, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

        return jax.lax.cond(jnp.sum(batch.mask) > 0, update, skip, state, batch, data)

    return step


def view_model(model, batch_size: int, n_negatives: int):
    """``model`` cloned to the sizes of a row view: ``batch_size`` user rows and
    ``batch_size * (1 + n_negatives)`` item rows (:func:`make_train_step` with ``rows``)."""
    return model.clone(n_users=batch_size, n_items=batch_size * (1 + n_negatives))


def epoch_batches(
    state: TrainState,
    data: TrainData,
    batch_size: int,
    n_negatives: int = 1,
    negative_sampling: str = "uniform",
) -> Batch:
    """This epoch's batches: ``Batch`` of ``[n_batches, batch_size(, 1 + n)]`` arrays.

    The real pairs are shuffled with :func:`index_shuffle` (padding stays behind them) and every
    negative of the epoch is drawn in one vectorised call (far cheaper on CPU than one small draw
    per scan step), both from ``fold_in(state.key, state.step)`` at the start of the epoch.
    Threefry is partitionable, so the draw of slot ``i`` does not depend on the capacity: a
    padded variant sees exactly the batches of the unpadded data, then padding-only batches.
    """
    check_batches(batch_size, data)
    key = jax.random.fold_in(state.key, state.step)
    perm, _ = shuffled_rows(jax.random.fold_in(key, _SHUFFLE), data.n_real, data.n_pairs, batch_size)
    perm = perm.reshape(-1)
    users = data.users[perm]
    neg = sample_negatives(jax.random.fold_in(key, _NEGATIVES), data.positives, users, n_negatives, negative_sampling)
    items = jnp.concatenate([data.items[perm][:, None], neg], axis=1)
    batches = Batch(
        users.reshape(-1, batch_size),
        items.reshape(-1, batch_size, 1 + n_negatives),
        data.mask[perm].reshape(-1, batch_size),
    )
    return constrain_batches(batches)  # split along B over a mesh's "data" axis (no-op without one)


def shuffled_rows(key: jax.Array, n_real, size: int, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """The one batching of every epoch: rows ``[0, n_real)`` shuffled into ``size // batch_size``
    batches, padding rows behind them.

    Returns ``index [n_batches, batch_size]`` int32 (a permutation of ``[0, n_real)`` then
    ``n_real .. size - 1``) and ``mask [n_batches, batch_size]`` float32 (1 for a real row). The
    order depends on ``(key, n_real)`` only (:func:`index_shuffle`), so padding never changes which
    real rows share a batch. ``size`` must be a multiple of ``batch_size``.
    """
    if batch_size < 1 or size % batch_size:
        raise JaxrecError(f"{size} rows do not split into batches of {batch_size}")
    perm = index_shuffle(key, n_real, size)
    mask = (jnp.arange(size) < n_real).astype(jnp.float32)
    return perm.reshape(-1, batch_size), mask.reshape(-1, batch_size)


def check_batches(batch_size: int, data: TrainData) -> None:
    """Raise :class:`JaxrecError` (before tracing goes further) unless ``data`` was padded to
    whole batches of ``batch_size``."""
    if batch_size < 1 or data.n_pairs % batch_size:
        raise JaxrecError(
            f"batch size {batch_size} does not match the training data, padded to {data.n_pairs} "
            "pairs (build it with train_data(..., batch_size) of the same size)"
        )


def make_epoch(step: Callable, batch_size: int, n_negatives: int = 1, negative_sampling: str = "uniform") -> Callable:
    """``epoch(state, data) -> (state, metrics)``: one ``lax.scan`` of ``step`` over the batches.

    ``metrics`` holds ``[n_batches]`` arrays of every per-step metric. A masked graph (data variants
    of one capacity) is normalised once, here, for all the epoch's steps (at every step it cost a
    LightGCN member on ml-100k about a quarter of its epoch).
    """

    def epoch(state: TrainState, data: TrainData):
        batches = epoch_batches(state, data, batch_size, n_negatives, negative_sampling)
        data = data.replace(inputs=normalise_inputs(data.inputs))
        return jax.lax.scan(lambda s, b: step(s, b, data), state, batches)

    return epoch
