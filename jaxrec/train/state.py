"""The training state: one pytree of params, optimizer state, step counter and random key."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax.training import train_state


class TrainState(train_state.TrainState):
    """``flax`` TrainState plus a typed random key.

    Attributes (pytree leaves): ``step`` int, ``params`` (``{"params": ...}`` variables of a
    Recommender), ``opt_state``, ``key`` (a typed ``jax.random.key``). ``apply_fn`` and ``tx`` are
    static. Per-step randomness is ``fold_in(key, step)``: it depends on the step only, never on
    the device count or on how epochs were split across runs, so a resumed run repeats exactly.
    """

    key: jax.Array


def init_params(model, key: jax.Array, inputs: dict | None = None) -> dict:
    """``{"params": ...}`` of ``model``, initialised from ``key``.

    Args:
      inputs: the model's non-trainable variable collections (e.g. ``{"graph": ...}`` for
        LightGCN), needed to trace the forward pass; they are not part of the result.
    """
    users = jnp.zeros((1,), jnp.int32)
    _, variables = model.apply(
        dict(inputs or {}), users, users[:, None], rngs={"params": key}, mutable=["params"]
    )
    return {"params": variables["params"]}


def create_state(
    model, key: jax.Array, tx: optax.GradientTransformation, inputs: dict | None = None
) -> TrainState:
    """Initialise ``model`` from ``key`` and wrap its params with the optimizer ``tx``."""
    init_key, state_key = jax.random.split(key)
    params = init_params(model, init_key, inputs)
    return TrainState.create(apply_fn=model.apply, params=params, tx=tx, key=state_key)
