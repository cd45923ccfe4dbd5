"""The GAN's losses on D's outputs: the seed's minimax BCE and its stabilised variants.

Every loss is a masked mean over a batch (padding rows weigh 0). See
:mod:`jaxrec.adversarial.gan_steps` for where each is used and the papers behind them.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

LOSSES = ("bce", "hinge", "wgan-gp")


def d_loss_terms(
    real_logits: jax.Array, fake_logits: jax.Array, mask: jax.Array, loss: str = "bce", label_smoothing: float = 0.0
) -> tuple:
    """D's loss as its real and fake terms (masked means over the batch).

    Args:
      real_logits, fake_logits: ``[B]`` D's outputs on real and generated users.
      mask: ``[B]`` 1 for real rows of the batch, 0 for padding.
      loss: ``bce`` -- the seed's ``L(G, D) = -E[log D(x)] - E[log(1 - D(G(z)))]``: terms
        ``softplus(-l_real)`` and ``softplus(l_fake)``; with ``label_smoothing = s`` the real target
        is ``1 - s``: ``(1 - s) softplus(-l_real) + s softplus(l_real)``; ``hinge``:
        ``relu(1 - l_real)`` and ``relu(1 + l_fake)``; ``wgan-gp``: ``-l_real`` and ``l_fake`` (the
        gradient penalty is added by the step).
    Returns ``(loss_real, loss_fake)``; D's loss is their sum.
    """
    n = jnp.maximum(jnp.sum(mask), 1.0)
    if loss == "bce":
        real = jax.nn.softplus(-real_logits)
        if label_smoothing:
            real = (1.0 - label_smoothing) * real + label_smoothing * jax.nn.softplus(real_logits)
        fake = jax.nn.softplus(fake_logits)
    elif loss == "hinge":
        real, fake = jax.nn.relu(1.0 - real_logits), jax.nn.relu(1.0 + fake_logits)
    else:
        real, fake = -real_logits, fake_logits
    return jnp.sum(real * mask) / n, jnp.sum(fake * mask) / n


def g_adversarial_loss(fake_logits: jax.Array, mask: jax.Array, non_saturating: bool, loss: str = "bce") -> jax.Array:
    """G's adversarial loss from D's outputs on its samples ``[B]`` (masked mean).

    ``bce``: ``minimax`` ``E[log(1 - D(G(z)))] = -E[softplus(l)]`` (the seed's game) or
    ``non_saturating`` ``-E[log D(G(z))] = E[softplus(-l)]``; ``hinge`` and ``wgan-gp``: ``-E[l]``.
    """
    n = jnp.maximum(jnp.sum(mask), 1.0)
    if loss != "bce":
        per = -fake_logits
    else:
        per = jax.nn.softplus(-fake_logits) if non_saturating else -jax.nn.softplus(fake_logits)
    return jnp.sum(per * mask) / n


def gradient_penalty(critic: Callable, real: jax.Array, fake: jax.Array, key: jax.Array, mask: jax.Array) -> jax.Array:
    """WGAN-GP's ``E[(||grad_x critic(x_hat)|| - 1)^2]`` at ``x_hat = e real + (1 - e) fake``,
    ``e ~ U(0, 1)`` per row (Gulrajani et al. 2017); ``critic: [B, n] -> [B]``, masked mean."""
    e = jax.random.uniform(key, (real.shape[0], 1))
    x_hat = e * real + (1.0 - e) * fake
    grads = jax.grad(lambda x: jnp.sum(critic(x)))(x_hat)
    norms = jnp.sqrt(jnp.sum(jnp.square(grads), axis=-1) + 1e-12)
    return jnp.sum(jnp.square(norms - 1.0) * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def feature_matching_loss(real_features: jax.Array, fake_features: jax.Array, mask: jax.Array) -> jax.Array:
    """``||mean_B f(real) - mean_B f(fake)||^2`` over ``[B, F]`` features (masked means;
    Salimans et al. 2016)."""
    w = mask[:, None] / jnp.maximum(jnp.sum(mask), 1.0)
    return jnp.sum(jnp.square(jnp.sum(real_features * w, 0) - jnp.sum(fake_features * w, 0)))
