"""Pairwise and pointwise ranking losses over (positive, sampled negatives) scores."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxrec.errors import JaxrecError


def bpr_loss(pos: jax.Array, neg: jax.Array) -> jax.Array:
    """BPR (Rendle et al., UAI 2009): ``pos [B]``, ``neg [B, n]`` -> ``[B]`` per-example loss.

    ``-log sigmoid(s_ui - s_uj)``, averaged over the ``n`` negatives of each positive.
    """
    return -jnp.mean(jax.nn.log_sigmoid(pos[:, None] - neg), axis=-1)


def bce_loss(pos: jax.Array, neg: jax.Array) -> jax.Array:
    """Binary cross-entropy on logits (NeuMF, He et al., WWW 2017): ``[B]``, ``[B, n]`` -> ``[B]``.

    Each positive (label 1) and each negative (label 0) is one sample; the per-row value is the
    mean over its ``1 + n`` samples, so the batch mean equals the mean over all samples.
    """
    lp = optax.sigmoid_binary_cross_entropy(pos, jnp.ones_like(pos))
    ln = optax.sigmoid_binary_cross_entropy(neg, jnp.zeros_like(neg))
    return (lp + jnp.sum(ln, axis=-1)) / (1 + neg.shape[-1])


LOSSES = {"bpr": bpr_loss, "bce": bce_loss}


def get_loss(name: str):
    if name not in LOSSES:
        raise JaxrecError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[name]
