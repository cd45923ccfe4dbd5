"""Negative sampling on device that never returns a training positive of the user.

The training positives are held as a CSR (``indptr [n_users + 1]``, sorted ``indices [N]``)
turned into a :class:`PositiveSets` pytree of device arrays, passed to jitted code as an
argument (not a closed-over constant) so it can be vmapped and sharded.

Uniform sampling is *exact and rejection-free*: draw ``r ~ U{0 .. n_items - deg(u) - 1}`` and
map it to the ``r``-th item the user has not interacted with. With the user's sorted positives
``p_0 < p_1 < ...``, that item is ``r + k`` where ``k = #{m : p_m - m <= r}``; ``p_m - m`` is
non-decreasing, so ``k`` is a binary search in the user's CSR segment (``log2(max degree)``
fixed iterations, no data-dependent loop).

Popularity-weighted sampling draws from ``pop^alpha`` by inverse CDF and redraws positives
(bounded rounds); anything still positive after them falls back to the exact uniform draw.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxrec.data.interactions import Interactions
from jaxrec.errors import JaxrecError


@struct.dataclass
class PositiveSets:
    """Per-user positive item sets on device.

    Attributes:
      indptr: ``[n_users + 1]`` int32 CSR row pointers.
      indices: ``[N]`` int32 positives, sorted within each user.
      shifted: ``[N]`` int32 ``indices[m] - (m - indptr[u])`` (non-decreasing per user).
      item_cdf: ``[n_items]`` float32 cumulative sampling distribution for popularity sampling
        (uniform when not requested).
      search_steps: static; binary-search iterations covering the largest user's positives
        (pad it to a common value to vmap over several data sets).
    """

    indptr: jax.Array
    indices: jax.Array
    shifted: jax.Array
    item_cdf: jax.Array
    search_steps: int = struct.field(pytree_node=False, default=32)

    @property
    def n_items(self) -> int:
        return self.item_cdf.shape[-1]


def search_depth(train: Interactions) -> int:
    """The binary-search depth :func:`positive_sets` needs for ``train`` (its largest positive
    set); data variants to stack use the largest over the variants."""
    deg = np.diff(train.csr()[0])
    return max(1, math.ceil(math.log2(int(deg.max(initial=0)) + 1)))


def positive_sets(
    train: Interactions,
    popularity_alpha: float | None = None,
    capacity: int | None = None,
    search_steps: int | None = None,
) -> PositiveSets:
    """Build the device-side positive sets of ``train`` (duplicates collapsed).

    Args:
      popularity_alpha: when set, popularity sampling draws item ``i`` with probability
        proportional to ``count_i ** alpha`` (word2vec uses 0.75); None = uniform.
      capacity: pad ``indices``/``shifted`` to this length (entries past ``indptr[-1]`` are never
        read), so variants of different sizes share one shape.
      search_steps: binary-search depth, at least this data's own (give the largest of the
        variants to stack).
    """
    indptr, indices = train.csr()
    deg = np.diff(indptr)
    if np.any(deg >= train.n_items):
        u = int(np.flatnonzero(deg >= train.n_items)[0])
        raise JaxrecError(
            f"{train.source}: user {train.user_ids[u]} interacted with every item; "
            "no negative item can be sampled for them"
        )
    offsets = np.arange(indices.shape[0], dtype=np.int64) - np.repeat(indptr[:-1], deg)
    shifted = (indices - offsets).astype(np.int32)
    if popularity_alpha is None:
        weights = np.ones(train.n_items, dtype=np.float64)
    else:
        weights = np.bincount(indices, minlength=train.n_items).astype(np.float64) ** popularity_alpha
    cdf = np.cumsum(weights) / weights.sum()
    pad = max(0, (capacity or 0) - indices.shape[0])
    own_steps = search_depth(train)
    if search_steps is not None and search_steps < own_steps:
        raise JaxrecError(f"{train.source}: search_steps={search_steps} is below this data's {own_steps}")
    return PositiveSets(
        indptr=jnp.asarray(indptr),
        indices=jnp.asarray(np.concatenate([indices, np.zeros(pad, np.int32)]).astype(np.int32)),
        shifted=jnp.asarray(np.concatenate([shifted, np.zeros(pad, np.int32)])),
        item_cdf=jnp.asarray(cdf, dtype=jnp.float32),
        search_steps=own_steps if search_steps is None else int(search_steps),
    )


def _count_le(sorted_vals: jax.Array, lo: jax.Array, hi: jax.Array, x: jax.Array, steps: int):
    """Per row, ``#{m in [lo, hi) : sorted_vals[m] <= x}`` by a fixed-step binary search."""

    def body(_, bounds):
        lo, hi = bounds
        mid = (lo + hi) // 2
        go_right = (sorted_vals[jnp.clip(mid, 0, sorted_vals.shape[0] - 1)] <= x) & (lo < hi)
        return jnp.where(go_right, mid + 1, lo), jnp.where(go_right | (lo >= hi), hi, mid)

    # a loop, not unrolled: unrolled, XLA fuses and re-computes the index chains (2x slower)
    return jax.lax.fori_loop(0, steps + 1, body, (lo, hi))[0]


def is_positive(pos: PositiveSets, users: jax.Array, items: jax.Array) -> jax.Array:
    """``users [...]``, ``items [...]`` -> bool, whether ``items`` is a training positive of ``users``."""
    lo, hi = pos.indptr[users], pos.indptr[users + 1]
    end = _count_le(pos.indices, lo, hi, items, pos.search_steps)
    last = pos.indices[jnp.clip(end - 1, 0, pos.indices.shape[0] - 1)]
    return (end > lo) & (last == items)


def uniform_negatives(key: jax.Array, pos: PositiveSets, users: jax.Array, n: int = 1) -> jax.Array:
    """``users [B]`` -> ``[B, n]`` items drawn uniformly from each user's non-positives (exact)."""
    lo, hi = pos.indptr[users], pos.indptr[users + 1]
    n_free = pos.n_items - (hi - lo)  # [B] > 0 (checked in positive_sets)
    u = jax.random.uniform(key, (users.shape[0], n))
    r = jnp.minimum((u * n_free[:, None]).astype(jnp.int32), n_free[:, None] - 1)
    k = jax.vmap(
        lambda col: _count_le(pos.shifted, lo, hi, col, pos.search_steps) - lo,
        in_axes=1,
        out_axes=1,
    )(r)
    return r + k


def popularity_negatives(key: jax.Array, pos: PositiveSets, users: jax.Array, n: int = 1, rounds: int = 8) -> jax.Array:
    """``users [B]`` -> ``[B, n]`` items drawn from ``pos.item_cdf`` restricted to non-positives.

    Rejection with ``rounds`` redraws; the rare leftovers take an exact uniform non-positive.
    """
    keys = jax.random.split(key, rounds + 1)
    uu = jnp.broadcast_to(users[:, None], (users.shape[0], n))

    def draw(k):
        u = jax.random.uniform(k, uu.shape)
        return jnp.minimum(jnp.searchsorted(pos.item_cdf, u, side="right"), pos.n_items - 1)

    items = draw(keys[0])
    for k in keys[1:-1]:
        items = jnp.where(is_positive(pos, uu, items), draw(k), items)
    fallback = uniform_negatives(keys[-1], pos, users, n)
    return jnp.where(is_positive(pos, uu, items), fallback, items).astype(jnp.int32)


NEGATIVE_SAMPLERS = ("uniform", "popularity")  #: the ``method`` names of :func:`sample_negatives`


def sample_negatives(
    key: jax.Array, pos: PositiveSets, users: jax.Array, n: int = 1, method: str = "uniform"
) -> jax.Array:
    """``users [B]`` -> ``[B, n]`` negatives; ``method`` is ``uniform`` or ``popularity``."""
    if method == "uniform":
        return uniform_negatives(key, pos, users, n)
    if method == "popularity":
        return popularity_negatives(key, pos, users, n)
    raise JaxrecError(f"unknown negative sampling method {method!r}; choose one of {list(NEGATIVE_SAMPLERS)}")


def mix32(x: jax.Array) -> jax.Array:
    """A bijective 32-bit integer hash of ``uint32`` values (lowbias32, C. Wellons'
    hash-prospector): the mixing function of the Feistel shuffle and of NeuMF's dropout masks."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def _feistel(x_hi, x_lo, size_hi, size_lo, round_keys) -> jax.Array:
    """Feistel rounds over ``Z_size_hi x Z_size_lo`` (modular addition: a bijection for any sizes;
    the sizes may be traced ``uint32`` values)."""
    hi, lo = x_hi, x_lo
    for r in range(round_keys.shape[0]):
        if r % 2 == 0:
            hi = (hi + mix32(lo ^ round_keys[r]) % size_hi) % size_hi
        else:
            lo = (lo + mix32(hi ^ round_keys[r]) % size_lo) % size_lo
    return hi * size_lo + lo


def index_shuffle(key: jax.Array, n, size: int | None = None, rounds: int = 6) -> jax.Array:
    """A pseudo-random permutation of ``arange(n)`` in the first ``n`` of ``size`` slots.

    Returns ``[size]`` int32 (``size`` defaults to ``n``, which must then be a Python int):
    slots ``[0, n)`` hold a permutation of ``[0, n)`` that is a function of ``(key, n)`` only,
    and slots ``[n, size)`` hold ``n .. size - 1`` unchanged. ``n`` may be a traced scalar, so
    data sets padded to a common capacity ``size`` (members of a sweep) shuffle their real rows
    exactly as they would unpadded, and padding stays at the end.

    ``jax.random.permutation`` sorts random keys, and XLA's CPU sort is slow (65 ms for 82k
    items on 2 cores: more than the whole MF epoch's arithmetic). This is instead a Feistel
    network, the construction behind random-access shuffles such as grain's ``index_shuffle``
    (Black & Rogaway, "Ciphers with arbitrary finite domains", CT-RSA 2002), on the domain
    ``[0, 2^m)`` with ``2^(m-1) < n <= 2^m`` split into two balanced power-of-two halves; the
    images below ``n`` are kept in order (a cumulative sum and one scatter, loop-free).
    """
    size = int(n) if size is None else int(size)
    if size >= 2**30:
        raise JaxrecError(f"index_shuffle supports fewer than 2^30 items, got {size}")
    round_keys = jax.random.bits(key, (rounds,), jnp.uint32)
    n = jnp.clip(jnp.asarray(n, jnp.int32), 1, max(size, 1))
    bits = 32 - jax.lax.clz(n - 1)  # m: 2^(m-1) < n <= 2^m (0 for n = 1)
    size_lo = jnp.left_shift(jnp.int32(1), bits // 2).astype(jnp.uint32)
    size_hi = jnp.left_shift(jnp.int32(1), bits - bits // 2).astype(jnp.uint32)
    domain = 1 << max(size - 1, 0).bit_length()  # static bound on 2^m
    x = jnp.arange(domain, dtype=jnp.uint32)
    image = _feistel(x // size_lo, x % size_lo, size_hi, size_lo, round_keys).astype(jnp.int32)
    keep = (x < size_hi * size_lo) & (image < n)
    slot = jnp.cumsum(keep) - 1
    base = jnp.arange(size, dtype=jnp.int32)
    return base.at[jnp.where(keep, slot, size)].set(image, mode="drop")
