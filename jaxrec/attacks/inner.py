"""The surrogate's side of an optimized attack (:mod:`jaxrec.attacks.optimized`; the attacker's
side is :mod:`jaxrec.attacks.outer`): the training data with the fake profiles' pair weights,
the surrogate's epochs under ``jax.checkpoint`` (so the hypergradient differentiates through
them), and EASE fitted in closed form for the ``closed`` kind. ``spec`` is the attack's
:class:`~jaxrec.attacks.optimized.Spec`."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrec.models.propagation import normalise_inputs
from jaxrec.train.state import TrainState, adam, create_state
from jaxrec.train.steps import TrainData, epoch_batches, make_loss_fn, make_train_step


def with_profiles(spec, data: TrainData, weights: jax.Array) -> TrainData:
    """``data`` with the fake block's pair weights (and, for a graph model, its fake edges' masks)
    set to ``weights [F, C]`` (traceable, differentiable in ``weights``)."""
    lo, hi = spec.n_real_pairs, spec.n_real_pairs + spec.slots * spec.n_candidates
    flat = weights.reshape(-1)
    dtype = jnp.promote_types(data.mask.dtype, flat.dtype)  # float64 weights (a precise check) stay float64
    out = data.replace(mask=data.mask.astype(dtype).at[lo:hi].set(flat.astype(dtype)))
    if "graph" in data.inputs:
        graph = data.inputs["graph"]
        graph = {**graph, "u_mask": graph["u_mask"].astype(dtype).at[lo:hi].set(flat.astype(dtype))}
        out = out.replace(inputs={**data.inputs, "graph": graph})
    return out


_DISTINCT = 3  #: the fold_in tag of the redraws of negatives equal to their pair's positive


def distinct_negatives(key: jax.Array, items: jax.Array, n_items: int) -> jax.Array:
    """``items [..., 1 + n]`` (a positive, then its negatives) with every negative that equals its
    pair's positive redrawn uniformly from the other ``n_items - 1`` items (from ``key``); every
    other negative is kept. A fake pair's negatives are drawn over all items (its profile is a
    variable, not a positive set), so one may hit its own positive: the pair then has no gradient
    for that item's row. Kept draws plus the redraws are uniform over the items but the positive:
    ``P(j) = 1/N + 1/N * 1/(N - 1) = 1/(N - 1)``. A real pair's negatives never equal a positive
    of its user (:func:`~jaxrec.data.sampling.sample_negatives`), so it keeps its draws."""
    pos, neg = items[..., :1], items[..., 1:]
    r = jax.random.randint(key, neg.shape, 0, n_items - 1, dtype=neg.dtype)
    other = r + (r >= pos).astype(neg.dtype)  # uniform over the items but pos
    return jnp.concatenate([pos, jnp.where(neg == pos, other, neg)], axis=-1)


def _epoch(spec):
    """The engine's epoch (:func:`~jaxrec.train.steps.make_epoch`: one shuffle and every negative
    drawn at the epoch's start, a ``lax.scan`` of the steps) with every step under
    ``jax.checkpoint`` -- differentiating an epoch keeps each step's state, not each step's
    intermediates (the dense gradient tables, Adam's updates) -- and no negative equal to its
    pair's positive (:func:`distinct_negatives`)."""
    step = jax.checkpoint(make_train_step(make_loss_fn(spec.model, spec.loss, with_l2=spec.l2 > 0)))

    def epoch(state: TrainState, data: TrainData):
        batches = epoch_batches(state, data, spec.batch)
        key = jax.random.fold_in(jax.random.fold_in(state.key, state.step), _DISTINCT)
        batches = batches._replace(items=distinct_negatives(key, batches.items, data.positives.n_items))
        data = data.replace(inputs=normalise_inputs(data.inputs))
        return jax.lax.scan(lambda s, b: step(s, b, data), state, batches)

    return epoch


def fresh_surrogate(spec, data: TrainData, key: jax.Array) -> TrainState:
    """The surrogate's initial state from ``key`` (Adam at ``spec.lr``)."""
    return create_state(spec.model, key, adam(eps_root=spec.eps_root), data.inputs, {"l2": spec.l2}, spec.lr)


def train_surrogate(spec, state: TrainState, data: TrainData, weights: jax.Array, epochs: int, unroll: int):
    """``epochs`` epochs on the data with profile ``weights``, the last ``unroll`` differentiated
    (each under ``jax.checkpoint``); returns the trained state."""
    epoch = _epoch(spec)
    pre = epochs - unroll
    if pre:
        frozen = with_profiles(spec, data, jax.lax.stop_gradient(weights))
        state = jax.lax.fori_loop(0, pre, lambda _, s: epoch(s, frozen)[0], state)
        state = jax.lax.stop_gradient(state)
    poisoned = with_profiles(spec, data, weights)
    body = jax.checkpoint(lambda s, _: (epoch(s, poisoned)[0], None))
    state, _ = jax.lax.scan(body, state, None, length=unroll)
    return state


def ease_scores(gram: jax.Array, rows: jax.Array, weights: jax.Array, lam: float) -> jax.Array:
    """Scores ``[U, C]`` of the candidate items under EASE (Steck, WWW 2019) fitted in closed form
    on the candidates' columns of the real positives ``X`` (``gram = X^T X [C, C]``) plus the fake
    profiles ``P = weights [F, C]``: ``G = X^T X + P^T P + lam I``, ``B = I - G^-1 diag(1 /
    diag(G^-1))`` (zero diagonal), scores ``rows B`` for the users' candidate rows ``rows [U, C]``.
    The fitted model is a smooth function of the profile -- no training run, no seed -- so the
    attack cannot fit one training trajectory."""
    g = gram.astype(weights.dtype) + weights.T @ weights + lam * jnp.eye(weights.shape[1], dtype=weights.dtype)
    inv = jnp.linalg.inv(g)
    b = jnp.eye(g.shape[0], dtype=g.dtype) - inv / jnp.diagonal(inv)[None, :]
    return rows.astype(b.dtype) @ b
