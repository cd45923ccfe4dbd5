"""Discrete user profiles from a generator's scores, and the relaxations that train through them.

A fake user as injected is discrete: the ``L`` items it interacts with (and, for rated profiles,
an integer rating on each). A discriminator that judges G's continuous output instead can win by
a shortcut (real rows are exactly 0/1), so the GAN can show D the discrete profile itself and let
gradients pass with a relaxation:

* :func:`top_l_mask` -- the one discretiser: each row's ``L`` highest-scored items (exactly ``L``;
  ties go to the lower index), optionally with target items excluded and forced in. The attack's
  profiles (:func:`jaxrec.attacks.profiles.top_l`) and the GAN's training forward pass both use it.
* :func:`straight_through` -- ``hard + (soft - stop_gradient(soft))``: the forward value is exactly
  ``hard``, the gradient is ``soft``'s (Bengio et al. 2013, the straight-through estimator).
* :func:`relaxed_top_l` -- straight-through top-L of G's logits, or Gumbel top-L (a sample of ``L``
  items without replacement from ``softmax(logits)``: top-L of ``logits + Gumbel noise``; Kool et
  al., ICML 2019), with the gradient of ``sigmoid(scores / tau)`` (Jang et al., ICLR 2017).
* :func:`st_round` -- integer ratings with a straight-through gradient; :func:`st_categorical` --
  a level drawn from per-level logits (Gumbel-max) with the gradient of the softmax's expected level.

The threshold of each row is found by bisection over the float's order-preserving integer key
(32 compare-and-count passes over ``[N, n_items]``): 4x faster than ``lax.top_k`` with
``k = max L`` on a CPU and free of a static ``k``.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

RELAXATIONS = ("none", "straight_through", "gumbel")


def _order_key(x: jax.Array) -> jax.Array:
    """``uint32`` key with ``key(a) < key(b)`` iff ``a < b`` for float32 (``-inf`` lowest)."""
    bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)
    return jnp.where((bits >> 31) == 1, ~bits, bits | jnp.uint32(0x80000000))


def top_l_mask(scores: jax.Array, lengths: jax.Array, targets: Sequence[int] = ()) -> jax.Array:
    """Each row's ``lengths[r]`` highest-scored non-target items, plus ``targets``.

    Args:
      scores: ``[N, n_items]`` float; lengths: ``[N]`` int (clipped to ``[0, n_items - |targets|]``);
      targets: item indices excluded from the choice and set to 1 in every row.
    Returns ``[N, n_items]`` float32 in {0, 1}, each row with exactly ``lengths[r]`` non-target ones
    (among equal scores the lower index wins). Jittable (``targets`` static).
    """
    n, n_items = scores.shape
    t = jnp.asarray(tuple(targets), jnp.int32)
    if t.size:
        scores = scores.at[:, t].set(-jnp.inf)
    lengths = jnp.clip(lengths.astype(jnp.int32), 0, n_items - t.size)
    key = _order_key(scores)

    def halve(_, bounds):  # the largest threshold with count(key >= threshold) >= L
        lo, hi = bounds
        gap = hi - lo
        mid = lo + (gap >> 1) + (gap & 1)
        ok = jnp.sum(key >= mid[:, None], axis=1) >= lengths
        return jnp.where(ok, mid, lo), jnp.where(ok, hi, mid - 1)

    lo = jnp.zeros((n,), jnp.uint32)
    hi = jnp.full((n,), 0xFFFFFFFF, jnp.uint32)
    thr, _ = jax.lax.fori_loop(0, 32, halve, (lo, hi))
    above = key > thr[:, None]
    tied = key == thr[:, None]
    room = lengths - jnp.sum(above, axis=1)  # how many of the tied items fit
    keep = above | (tied & (jnp.cumsum(tied, axis=1) <= room[:, None]))
    keep = keep & (lengths > 0)[:, None]
    out = keep.astype(jnp.float32)
    return out.at[:, t].set(1.0) if t.size else out


def straight_through(hard: jax.Array, soft: jax.Array) -> jax.Array:
    """``hard`` in the forward pass (exactly: ``soft - soft`` is 0), ``soft``'s gradient backward."""
    return hard + (soft - jax.lax.stop_gradient(soft))


def gumbel(key: jax.Array, shape) -> jax.Array:
    """Standard Gumbel noise ``-log(-log U)``, ``U ~ Uniform(0, 1)``."""
    u = jax.random.uniform(key, shape, jnp.float32, minval=jnp.finfo(jnp.float32).tiny, maxval=1.0)
    return -jnp.log(-jnp.log(u))


def selection_scores(logits: jax.Array, key: jax.Array | None, temperature: float = 1.0) -> jax.Array:
    """The scores whose top-L is the profile: ``logits``, plus ``temperature`` x Gumbel noise when
    ``key`` is given (then top-L is a sample of L items without replacement from
    ``softmax(logits / temperature)``)."""
    return logits if key is None else logits + temperature * gumbel(key, logits.shape)


def relaxed_top_l(
    logits: jax.Array, lengths: jax.Array, key: jax.Array | None = None, tau: float = 1.0, temperature: float = 1.0
) -> jax.Array:
    """``[N, n_items]``: forward exactly :func:`top_l_mask` of :func:`selection_scores`; backward the
    gradient of ``sigmoid(scores / tau)``."""
    scores = selection_scores(logits, key, temperature)
    hard = top_l_mask(jax.lax.stop_gradient(scores), lengths)
    return straight_through(hard, jax.nn.sigmoid(scores / tau))


def st_round(r: jax.Array) -> jax.Array:
    """``round(r)`` forward, identity gradient backward."""
    return straight_through(jnp.round(jax.lax.stop_gradient(r)), r)


def st_categorical(logits: jax.Array, key: jax.Array, tau: float = 1.0) -> jax.Array:
    """``[...]`` levels ``1..K`` from ``logits [..., K]``: forward a Gumbel-max sample (exactly an
    integer), backward the gradient of ``sum_k k softmax((logits + g) / tau)_k``."""
    scores = logits + gumbel(key, logits.shape)
    levels = jnp.arange(1, logits.shape[-1] + 1, dtype=jnp.float32)
    hard = (jnp.argmax(jax.lax.stop_gradient(scores), axis=-1) + 1).astype(jnp.float32)
    return straight_through(hard, jax.nn.softmax(scores / tau, axis=-1) @ levels)
