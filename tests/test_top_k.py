"""The blockwise top-k against ``lax.top_k``: identical values and indices, ties included."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.top_k import block_top_k, top_k


def _rows(seed: int, n: int) -> jnp.ndarray:
    """Scores with many exact ties (a few integer levels), masked -inf entries and whole rows that
    are -inf but for a few items."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 6, size=(9, n)).astype(np.float32)
    x[rng.random(x.shape) < 0.3] = -np.inf
    x[3, :] = -np.inf
    x[3, [n - 1, 7]] = 1.0  # fewer finite items than k: the rest are -inf, lowest columns first
    x[4] = rng.normal(size=n)  # no ties
    x[5, :] = 2.0  # all tied
    return jnp.asarray(x)


@pytest.mark.parametrize("n", [203, 256, 61])  # a partial last block; whole blocks; too short for blocks (lax.top_k)
def test_block_top_k_is_lax_top_k(n):
    x = _rows(n, n)
    vals, idx = block_top_k(x, 5, block=4)
    ref_vals, ref_idx = jax.lax.top_k(x, 5)
    np.testing.assert_array_equal(np.asarray(vals), np.asarray(ref_vals))
    np.testing.assert_array_equal(np.asarray(idx), np.asarray(ref_idx))


def test_block_top_k_any_block_size():
    x = _rows(1, 203)
    for block in (2, 3, 8):  # 102, 68 and 26 blocks: the two-stage path
        np.testing.assert_array_equal(np.asarray(block_top_k(x, 5, block)[1]), np.asarray(jax.lax.top_k(x, 5)[1]))


def test_top_k_under_vmap_flattens_rows():
    x = jnp.stack([_rows(s, 2000) for s in range(3)])  # [3, 9, 2000]: 63 blocks of 32 >= 4 * 12
    vals, idx = jax.vmap(top_k(12))(x)
    ref_vals, ref_idx = jax.lax.top_k(x, 12)
    np.testing.assert_array_equal(np.asarray(vals), np.asarray(ref_vals))
    np.testing.assert_array_equal(np.asarray(idx), np.asarray(ref_idx))
