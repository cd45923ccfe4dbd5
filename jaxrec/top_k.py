"""Exact top-k of score rows, faster than one ``lax.top_k`` over the whole catalogue on a CPU.

XLA's CPU top-k costs about as much as the score product it ranks. :func:`top_k` selects in
two stages:

1. split each row into blocks of ``B`` columns and take every block's maximum (one
   ``reduce_window`` pass, about as cheap as a row maximum);
2. the ``k`` blocks with the largest maxima hold the row's top ``k``: an item among the top ``k``
   has a block whose maximum is at least its score, and fewer than ``k`` blocks can have a larger
   maximum (each holds an item that beats it). ``lax.top_k`` over the ``k`` block maxima, then
   over the ``k * B`` scores of those blocks, gives the answer.

Ties are broken exactly as ``lax.top_k`` breaks them (the lower column first): among blocks tied
at the k-th maximum the lower ones are taken, and the chosen blocks are laid out in column order
before the second stage. The result is identical to ``lax.top_k`` -- values and indices -- for
scores that are finite or ``-inf`` (a NaN makes its whole block rank first, as ``lax.top_k``
ranks NaN first; with NaNs in more than ``k`` blocks the two may differ, in a ranking that is
meaningless anyway).

On one [1024, 26744] chunk with 50k masked pairs (2 cores) the two stages take a quarter to a
third less time than ``lax.top_k`` (``python bench/floors.py topk``; ``docs/speed.md``). Rows too
short for blocks to pay (fewer than ``4 k`` blocks) use ``lax.top_k`` directly.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

BLOCK = 32  #: columns per block (16-64 measured alike; 32 the fastest at k = 20)


def block_maxima(x: jax.Array, block: int = BLOCK) -> jax.Array:
    """``x [R, N]`` -> ``[R, ceil(N / block)]``, the maximum of every ``block`` columns (the last
    block padded with ``-inf``, which ``reduce_window`` does without copying ``x``)."""
    pad = -(-x.shape[1] // block) * block - x.shape[1]
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, block), (1, block), ((0, 0), (0, pad)))


def block_top_k(x: jax.Array, k: int, block: int = BLOCK) -> tuple[jax.Array, jax.Array]:
    """``x [R, N]`` -> ``(values [R, k], indices [R, k])``, exactly ``lax.top_k(x, k)``."""
    rows, n = x.shape
    if -(-n // block) < 4 * k:
        return tuple(jax.lax.top_k(x, k))
    _, chosen = jax.lax.top_k(block_maxima(x, block), k)  # [R, k] block ids, by maximum
    # each block's rank by id (k^2 compares: XLA's CPU sort of [R, k] costs more)
    place = jnp.sum(chosen[:, None, :] < chosen[:, :, None], axis=-1)
    chosen = jnp.zeros_like(chosen).at[jnp.arange(rows)[:, None], place].set(chosen)  # in column order
    cols = (chosen[:, :, None] * block + jnp.arange(block)).reshape(rows, k * block)
    inside = cols < n  # the last block may run past the row
    vals = jnp.where(inside, jnp.take_along_axis(x, jnp.minimum(cols, n - 1), axis=1), -jnp.inf)
    top, at = jax.lax.top_k(vals, k)
    return top, jnp.take_along_axis(cols, at, axis=1)


@functools.cache
def top_k(k: int):
    """``x [..., N] -> (values [..., k], indices [..., k])`` by :func:`block_top_k`, whose vmap
    flattens every batch axis into the rows: XLA's CPU top-k is fast on a 2-D operand (one row
    per user) and slower on 3-D ones (a vmapped sweep ranks ``strengths x users`` rows at once;
    top-20 of [8, 409, 40981] scores: 0.25 s flattened, 0.44 s not, on 2 CPU cores)."""

    @jax.custom_batching.custom_vmap
    def run(x):
        flat = x.reshape(-1, x.shape[-1])
        vals, idx = block_top_k(flat, k)
        return vals.reshape(*x.shape[:-1], k), idx.reshape(*x.shape[:-1], k)

    @run.def_vmap
    def _rule(axis_size, in_batched, x):  # only x is an argument: it is batched (leading axis)
        return run(x), (True, True)

    return run
