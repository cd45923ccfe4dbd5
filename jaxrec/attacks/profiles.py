"""Fake user profiles' items: binary ``[N, n_items]`` rows (ratings come from :mod:`~jaxrec.attacks.shilling`).

Shilling profiles (Lam & Riedl, WWW 2004; Mobasher et al., TOIT 2007) = target items + filler.
Two generators here, both with profile lengths matching the real users':

* :func:`gan_profiles` -- G's users for ``z ~ N(0, I)`` binarised by keeping each fake user's
  top-L items (the cut the GAN trains through, :mod:`jaxrec.attacks.discrete`), L drawn from
  the real users' empirical profile-length distribution (or fixed at the mean), with target
  items forced in (as AUSH / Leg-UP write GAN filler, Lin et al. 2020/2022);
* :func:`uniform_profiles` -- the random attack's items: L filler items drawn uniformly
  (:func:`uniform_items`, the one uniform draw, which the rated attacks use too).

The array form is the contract: ``profiles [N, n_items]`` float32 in {0, 1}. Targets are on top
of the L filler items (a profile has ``L + |targets \\ filler|`` items).
:func:`jaxrec.attacks.shilling.fake_profiles` gives the rows ratings and
:func:`jaxrec.attacks.poison.inject` appends them to the real data as new users.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.attacks.discrete import top_l_mask
from jaxrec.errors import JaxrecError

LENGTHS = ("empirical", "mean")


def sample_lengths(key: jax.Array, real_lengths: np.ndarray, n: int, mode: str = "empirical") -> jax.Array:
    """``[n]`` int32 profile lengths: drawn from ``real_lengths`` (``empirical``) or all equal to
    their rounded mean (``mean``, the attack protocol's filler size)."""
    real_lengths = np.asarray(real_lengths)
    real_lengths = real_lengths[real_lengths > 0]
    if real_lengths.size == 0:
        raise JaxrecError("profiles: no real user has an interaction to copy the profile length from")
    if mode == "empirical":
        return jnp.asarray(real_lengths, jnp.int32)[jax.random.randint(key, (n,), 0, real_lengths.size)]
    if mode == "mean":
        return jnp.full((n,), int(round(float(real_lengths.mean()))), jnp.int32)
    raise JaxrecError(f"unknown profile length mode {mode!r}; choose one of {LENGTHS}")


def _targets_array(targets: Sequence[int], n_items: int) -> jax.Array:
    t = np.asarray(list(targets), np.int64)
    if t.size and (t.min() < 0 or t.max() >= n_items):
        raise JaxrecError(f"item indices must be in [0, {n_items}), got {list(targets)}")
    return jnp.asarray(t, jnp.int32)


def top_l(
    scores: jax.Array, lengths: jax.Array, max_length: int | None = None, targets: Sequence[int] = ()
) -> jax.Array:
    """Binarise: each row keeps its ``lengths[r]`` highest-scored non-target items, plus ``targets``.

    Args:
      scores: ``[N, n_items]``; lengths: ``[N]`` int (clipped to ``max_length`` when given).
    Returns ``[N, n_items]`` float32 in {0, 1} (:func:`jaxrec.attacks.discrete.top_l_mask`, the
    discretiser the GAN trains through).
    """
    _targets_array(targets, scores.shape[1])
    lengths = jnp.asarray(lengths)
    if max_length is not None:
        lengths = jnp.minimum(lengths, int(max_length))
    return _top_l(jnp.asarray(scores), lengths, tuple(int(t) for t in targets))


_top_l = jax.jit(top_l_mask, static_argnums=2)


def gan_profiles(
    generate_fn,
    key: jax.Array,
    n: int,
    real_lengths: np.ndarray,
    targets: Sequence[int] = (),
    length_mode: str = "empirical",
):
    """``n`` fake users from a generator, binarised as injected.

    Args:
      generate_fn: ``(key, lengths [n]) -> sample`` with ``sample.scores [n, n_items]``, the scores
        whose top-L is a profile (e.g. ``partial(gan_training.sample, spec, g_params)``, a
        :class:`~jaxrec.adversarial.gan_steps.GANSample` that may also carry G's ratings).
      real_lengths: ``[U]`` the real users' profile lengths.
    Returns ``(profiles [n, n_items] in {0, 1}, sample)``.
    """
    if n < 1:
        raise JaxrecError(f"the number of fake users must be >= 1, got {n}")
    k_gen, k_len = jax.random.split(key)
    lengths = sample_lengths(k_len, real_lengths, n, length_mode)
    out = generate_fn(k_gen, lengths)
    return top_l(out.scores, lengths, int(np.max(real_lengths)), targets), out


def uniform_items(
    rng: np.random.Generator, n: int, candidates: np.ndarray, k: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The one uniform filler draw: row ``i`` gets ``k[i]`` distinct ``candidates`` drawn
    uniformly; returns ``(rows, items)`` flat, row by row and within a row in draw order (with one
    ``k`` for all rows: the first ``k`` columns of one uniform permutation per row)."""
    if k.max() == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(rng.random((n, candidates.size)), axis=1)
    r, rank = np.nonzero(np.arange(candidates.size) < k[:, None])
    return r, candidates[order[r, rank]]


def uniform_profiles(seed: int, lengths, n_items: int, targets: Sequence[int] = ()) -> np.ndarray:
    """``[len(lengths), n_items]`` float32 in {0, 1}: row r holds ``lengths[r]`` filler items drawn
    uniformly among the non-target items (:func:`uniform_items`, seeded), plus the targets: the
    random attack's items (its ratings: :func:`jaxrec.attacks.shilling.fake_profiles`)."""
    lengths = np.asarray(lengths, np.int64)
    t = np.asarray(_targets_array(targets, n_items))
    out = np.zeros((lengths.size, n_items), np.float32)
    rows, items = uniform_items(np.random.default_rng(seed), lengths.size, np.setdiff1d(np.arange(n_items), t), lengths)
    out[rows, items] = 1.0
    out[:, t] = 1.0
    return out
