"""The attacker's side of an optimized attack (:mod:`jaxrec.attacks.optimized`): the outer loss of
a surrogate's scores, the outer optimizer and the projection to valid profiles."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxrec.attacks.discrete import top_l_mask

LOSSES = ("logsigmoid", "hr", "cw", "ce")  #: outer losses (:mod:`jaxrec.attacks.optimized`'s docstring)


def scores_loss(spec, scores: jax.Array, seen: jax.Array, targets: jax.Array) -> tuple[jax.Array, dict]:
    """The attacker's loss (``spec.outer`` at ``spec.k``, ``spec.kappa``; smaller = the targets rank
    higher) of the outer-loss users' scores ``[U, N]`` over some ``N`` items, ``seen [U, N]`` the
    items each interacted with (never ranked; a target seen makes the pair ineligible), ``targets
    [T]`` among the ``N``; and the surrogate's own target hit ratio at K (a target beating the K-th
    best non-target item) over the eligible (user, target) pairs."""
    target_cols = jnp.zeros(scores.shape[1], bool).at[targets].set(True)
    masked = jnp.where(seen | target_cols[None, :], -jnp.inf, scores)
    kth = jax.lax.top_k(masked, spec.k)[0][:, -1]  # [U]
    st = scores[:, targets]  # [U, T]
    eligible = (~seen[:, targets]).astype(jnp.float32)
    margin = st - kth[:, None]
    if spec.outer == "logsigmoid":
        per = -jax.nn.log_sigmoid(margin)
    elif spec.outer == "hr":
        per = -jax.nn.sigmoid(margin / spec.kappa)
    elif spec.outer == "cw":
        per = jnp.maximum(-margin, -spec.kappa)
    else:
        per = -jax.nn.log_softmax(scores, axis=-1)[:, targets]
    n = jnp.maximum(jnp.sum(eligible), 1.0)
    return jnp.sum(per * eligible) / n, {"surrogate_hr": jnp.sum((margin > 0) * eligible) / n}


def project(scores: jax.Array, lengths: jax.Array, targets: jax.Array) -> jax.Array:
    """``[F, C]`` valid profiles: each row's ``lengths[r]`` best non-target candidates plus the
    targets (an empty row stays empty)."""
    is_target = jnp.zeros(scores.shape[1], bool).at[targets].set(True)
    filler = top_l_mask(jnp.where(is_target[None, :], -jnp.inf, scores), lengths)
    return jnp.where(is_target[None, :] & (lengths[:, None] > 0), 1.0, filler)


def normalize_rows() -> optax.GradientTransformation:
    """Each row of every update divided by its L2 norm (rows of zeros stay zero): RevAdv's
    per-fake-user gradient normalisation. A row with a non-finite entry stays non-finite (never
    a zero update: a NaN hypergradient must not look like a converged one)."""

    def update(updates, state, params=None):
        def unit(g):
            norm = jnp.linalg.norm(g, axis=-1, keepdims=True)
            return jnp.where(norm == 0, 0.0, g / jnp.where(norm == 0, 1.0, norm))

        return jax.tree.map(unit, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def outer_optimizer(lr: float = 1.0, momentum: float = 0.95) -> optax.GradientTransformation:
    """RevAdv's outer step: per-row normalised gradients, SGD with momentum."""
    return optax.chain(normalize_rows(), optax.sgd(lr, momentum))
