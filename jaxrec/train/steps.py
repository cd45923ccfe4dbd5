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
from typing import Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.data.interactions import Interactions
from jaxrec.data.sampling import PositiveSets, index_shuffle, positive_sets, sample_negatives
from jaxrec.errors import JaxrecError
from jaxrec.models.base import batch_l2
from jaxrec.train.losses import get_loss
from jaxrec.train.parallel import constrain_batches
from jaxrec.train.state import TrainState

_SHUFFLE, _NEGATIVES, _DROPOUT = 0, 1, 2  # fold_in tags separating the random streams


@chex.dataclass(frozen=True)
class TrainData:
    """Training pairs padded to whole batches, positive sets and model inputs (all arrays).

    Attributes:
      users, items: ``[N_pad]`` int32 positive pairs; ``N_pad`` is a multiple of the batch size.
      weight: ``[N_pad]`` float32, 1 for real pairs and 0 for padding.
      positives: :class:`PositiveSets` for negative sampling.
      inputs: the model's non-trainable variable collections (``{}`` for MF).
    """

    users: jax.Array
    items: jax.Array
    weight: jax.Array
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
) -> TrainData:
    """Pad ``train``'s (deduplicated) pairs to a multiple of ``batch_size`` and move them to device."""
    if batch_size < 1:
        raise JaxrecError(f"train.batch_size must be >= 1, got {batch_size}")
    indptr, items = train.csr()
    users = np.repeat(np.arange(train.n_users, dtype=np.int32), np.diff(indptr))
    if users.size == 0:
        raise JaxrecError(f"{train.source}: no training interactions")
    n_pad = math.ceil(users.size / batch_size) * batch_size - users.size
    pad = lambda a, v: np.concatenate([a, np.full(n_pad, v, a.dtype)])  # noqa: E731
    return TrainData(
        users=jnp.asarray(pad(users, 0)),
        items=jnp.asarray(pad(items, 0)),
        weight=jnp.asarray(pad(np.ones(users.size, np.float32), 0.0)),
        positives=positive_sets(train, popularity_alpha),
        inputs=dict(inputs or {}),
    )


class Batch(NamedTuple):
    """``users [B]``, ``items [B, 1 + n]`` (positive, then sampled negatives), ``weight [B]``."""

    users: jax.Array
    items: jax.Array
    weight: jax.Array


def make_loss_fn(model, loss: str = "bpr", l2: float = 0.0) -> Callable:
    """``loss_fn(params, inputs, users [B], items [B, 1 + n], weight [B], key) -> (loss, aux)``.

    ``items[:, 0]`` are positives, the rest sampled negatives; ``l2`` weights :func:`batch_l2`
    on the batch's layer-0 embeddings. Scores come from one ``model.score`` call, so shared work
    (LightGCN's propagation) happens once per step.
    """
    per_example = get_loss(loss)

    def loss_fn(params, inputs, users, items, weight, key):
        scores = model.apply(
            {**params, **inputs}, users, items, train=True, method="score", rngs={"dropout": key}
        )
        rank_loss = jnp.sum(per_example(scores[:, 0], scores[:, 1:]) * weight) / jnp.maximum(
            jnp.sum(weight), 1.0
        )
        total = rank_loss
        if l2:
            total = total + l2 * batch_l2(params, users, items)
        return total, {"loss": total, "rank_loss": rank_loss}

    return loss_fn


def make_train_step(loss_fn: Callable) -> Callable:
    """``step(state, batch, data) -> (state, metrics)``: one optimizer update on ``batch``.

    ``loss_fn`` has the signature of :func:`make_loss_fn`'s result (APR and other adversarial
    objectives plug in here); the dropout key is ``fold_in(state.key, step)``. Jit it with
    ``donate_argnums=0``.
    """

    def step(state: TrainState, batch: Batch, data: TrainData):
        key = jax.random.fold_in(jax.random.fold_in(state.key, state.step), _DROPOUT)
        grads, aux = jax.grad(loss_fn, has_aux=True)(
            state.params, data.inputs, batch.users, batch.items, batch.weight, key
        )
        return state.apply_gradients(grads=grads), aux

    return step


def epoch_batches(
    state: TrainState,
    data: TrainData,
    batch_size: int,
    n_negatives: int = 1,
    negative_sampling: str = "uniform",
) -> Batch:
    """This epoch's batches: ``Batch`` of ``[n_batches, batch_size(, 1 + n)]`` arrays.

    The pairs are shuffled with :func:`index_shuffle` and every negative of the epoch is drawn
    in one vectorised call (far cheaper on CPU than one small draw per scan step), both from
    ``fold_in(state.key, state.step)`` at the start of the epoch.
    """
    key = jax.random.fold_in(state.key, state.step)
    perm = index_shuffle(jax.random.fold_in(key, _SHUFFLE), data.n_pairs)
    users = data.users[perm]
    neg = sample_negatives(
        jax.random.fold_in(key, _NEGATIVES), data.positives, users, n_negatives, negative_sampling
    )
    items = jnp.concatenate([data.items[perm][:, None], neg], axis=1)
    batches = Batch(
        users.reshape(-1, batch_size),
        items.reshape(-1, batch_size, 1 + n_negatives),
        data.weight[perm].reshape(-1, batch_size),
    )
    return constrain_batches(batches)  # split along B over a mesh's "data" axis (no-op without one)


def make_epoch(
    step: Callable, batch_size: int, n_negatives: int = 1, negative_sampling: str = "uniform"
) -> Callable:
    """``epoch(state, data) -> (state, metrics)``: one ``lax.scan`` of ``step`` over the batches.

    ``metrics`` holds ``[n_batches]`` arrays of every per-step metric.
    """

    def epoch(state: TrainState, data: TrainData):
        batches = epoch_batches(state, data, batch_size, n_negatives, negative_sampling)
        return jax.lax.scan(lambda s, b: step(s, b, data), state, batches)

    return epoch
