"""The training state: one pytree of params, optimizer state, step counter, random key and
hyperparameters, and its member axis (many trainings stacked along a leading axis)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training import train_state


class TrainState(train_state.TrainState):
    """``flax`` TrainState plus a typed random key and the objective's hyperparameters.

    Attributes (pytree leaves): ``step`` int, ``params`` (``{"params": ...}`` variables of a
    Recommender), ``opt_state``, ``key`` (a typed ``jax.random.key``) and ``hparams``, a dict of
    float32 scalars read by the loss (``{"l2": ...}``, APR's ``eps``/``reg``, ...). The learning
    rate lives in ``opt_state`` (:func:`adam`, ``optax.inject_hyperparams``). Because every
    hyperparameter is a leaf, ``jax.vmap`` over a stacked state trains members with different
    values in one compiled program. ``apply_fn`` and ``tx`` are static. Per-step randomness is
    ``fold_in(key, step)``: it depends on the step only, never on the device count or on how
    epochs were split across runs, so a resumed run repeats exactly.
    """

    key: jax.Array
    hparams: dict = struct.field(default_factory=dict)


SCHEDULES = ("constant", "warmup_cosine")  #: learning-rate schedules (multiplying the injected rate)


@functools.cache
def adam(
    b1: float = 0.9,
    b2: float = 0.999,
    weight_decay: float = 0.0,
    schedule: str = "constant",
    warmup_steps: int = 0,
    total_steps: int = 0,
    eps_root: float = 0.0,
) -> optax.GradientTransformation:
    """Adam whose learning rate is state (``optax.inject_hyperparams``), not a constant.

    One static optimizer object for every learning rate (cached, so equal settings hash equal
    for ``jit``); set the rate with :func:`with_lr` (a leaf of ``opt_state``, vmappable).
    ``weight_decay`` is decoupled (AdamW, Loshchilov & Hutter 2019); ``schedule="warmup_cosine"``
    multiplies the rate by optax's warm-up (``warmup_steps``, linear from 0) then cosine decay
    to 0 at ``total_steps``. Without either, this is plain ``optax.adam``. ``eps_root > 0`` adds
    it to the second moment under the square root (``sqrt(nu + eps_root)``): Adam differentiable
    where ``nu = 0`` (a row whose every gradient so far was 0; with ``eps_root = 0`` the derivative
    of the square root there is infinite and differentiating through the step gives NaN), as
    when differentiating through training (:mod:`jaxrec.attacks.optimized`).
    """
    if weight_decay == 0.0 and schedule == "constant":
        if eps_root:
            return optax.inject_hyperparams(optax.adam)(learning_rate=1e-3, b1=b1, b2=b2, eps_root=eps_root)
        return optax.inject_hyperparams(optax.adam)(learning_rate=1e-3, b1=b1, b2=b2)

    def make(learning_rate):
        parts = [optax.scale_by_adam(b1, b2, eps_root=eps_root)]
        if weight_decay:
            parts.append(optax.add_decayed_weights(weight_decay))
        parts.append(optax.scale_by_learning_rate(learning_rate))
        if schedule == "warmup_cosine":
            shape = optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps, max(total_steps, warmup_steps + 1), 0.0)
            parts.append(optax.scale_by_schedule(shape))
        return optax.chain(*parts)

    return optax.inject_hyperparams(make)(learning_rate=1e-3)


def with_lr(state: TrainState, lr) -> TrainState:
    """``state`` with the injected learning rate set to ``lr`` (scalar, may be traced)."""
    opt = state.opt_state
    hyper = dict(opt.hyperparams)
    hyper["learning_rate"] = jnp.asarray(lr, jnp.float32)
    return state.replace(opt_state=opt._replace(hyperparams=hyper))


def learning_rate(state: TrainState) -> jax.Array:
    """The injected learning rate of ``state`` (``[]``, or ``[M]`` for stacked members)."""
    return state.opt_state.hyperparams["learning_rate"]


def init_params(model, key: jax.Array, inputs: dict | None = None) -> dict:
    """``{"params": ...}`` of ``model``, initialised from ``key``.

    Args:
      inputs: the model's non-trainable variable collections (e.g. ``{"graph": ...}`` for
        LightGCN), needed to trace the forward pass; they are not part of the result.
    """
    users = jnp.zeros((1,), jnp.int32)
    if getattr(model, "query", "users") == "history":  # a sequence model's query is a window
        users = jnp.full((1, model.max_len), model.n_items, jnp.int32).at[:, -1].set(0)
    _, variables = model.apply(dict(inputs or {}), users, users[..., None], rngs={"params": key}, mutable=["params"])
    return {"params": variables["params"]}


def create_state(
    model,
    key: jax.Array,
    tx: optax.GradientTransformation,
    inputs: dict | None = None,
    hparams: dict | None = None,
    lr=None,
) -> TrainState:
    """Initialise ``model`` from ``key`` and wrap its params with the optimizer ``tx``.

    ``hparams`` are the loss's hyperparameters (float32 scalars); ``lr`` sets the learning rate of
    an injected optimizer (:func:`adam`). Traceable: ``jax.vmap`` it over keys and values to
    create stacked members (:func:`create_members`).
    """
    init_key, state_key = jax.random.split(key)
    params = init_params(model, init_key, inputs)
    hp = {k: jnp.asarray(v, jnp.float32) for k, v in (hparams or {}).items()}
    state = TrainState.create(apply_fn=model.apply, params=params, tx=tx, key=state_key, hparams=hp)
    return state if lr is None else with_lr(state, lr)


def create_members(
    model,
    keys: jax.Array,
    tx: optax.GradientTransformation,
    inputs: dict | None = None,
    hparams: dict | None = None,
    lr=None,
) -> TrainState:
    """``M`` states stacked along a leading member axis, one per key.

    Args:
      keys: ``[M]`` typed keys (member m is ``create_state(model, keys[m], ...)``).
      hparams: ``{name: [M]}`` per-member values; lr: ``[M]`` learning rates (or None).
    The step counter becomes an ``[M]`` int32 array. One compiled program per (model, optimizer,
    shapes): run eagerly, a vmapped initialisation re-traces and recompiles every random draw on
    every call.
    """
    hparams = {k: jnp.asarray(v, jnp.float32) for k, v in (hparams or {}).items()}
    lr_arg = None if lr is None else jnp.asarray(lr, jnp.float32)
    state = _create_members(model, tx, keys, dict(inputs or {}), hparams, lr_arg)
    # one buffer per leaf (equal zeros may share one, and the state is donated to the epoch)
    return jax.tree.map(jnp.copy, state)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _create_members(model, tx, keys, inputs, hparams, lr):
    def one(key, hp, lr_m):
        s = create_state(model, key, tx, inputs, hp, lr_m)
        return s.replace(step=jnp.zeros((), jnp.int32))

    if lr is None:
        return jax.vmap(lambda k, hp: one(k, hp, None))(keys, hparams)
    return jax.vmap(one)(keys, hparams, lr)


def member(tree, m: int):
    """Member ``m`` of a stacked pytree (the leading axis removed)."""
    return jax.tree.map(lambda x: x[m], tree)


def stack(trees):
    """Stack pytrees of equal structure along a new leading member axis."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)
