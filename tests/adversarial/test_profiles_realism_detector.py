"""Fake profiles as injected, realism figures, and D's detector figures (hand-checked)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.adversarial import realism
from jaxrec.adversarial.gan_steps import GANSample
from jaxrec.attacks import profiles
from jaxrec.errors import JaxrecError


def test_top_l_keeps_lengths_and_forces_targets():
    scores = jnp.array([[0.9, 0.1, 0.8, 0.3, 0.7], [0.0, 0.5, 0.2, 0.9, 0.4]])
    out = profiles.top_l(scores, jnp.array([2, 1]), max_length=3)
    np.testing.assert_array_equal(out, [[1, 0, 1, 0, 0], [0, 0, 0, 1, 0]])
    # target item 0 is added on top of L filler items chosen among the other items
    out = profiles.top_l(scores, jnp.array([2, 1]), max_length=3, targets=(0,))
    np.testing.assert_array_equal(out, [[1, 0, 1, 0, 1], [1, 0, 0, 1, 0]])
    with pytest.raises(JaxrecError, match=r"item indices must be in \[0, 5\), got \[7\]"):
        profiles.top_l(scores, jnp.array([1, 1]), 2, targets=(7,))


def test_random_and_gan_profiles_follow_the_length_distribution():
    real_lengths = np.array([3, 3, 5, 8, 0])
    key = jax.random.key(0)
    drawn = profiles.sample_lengths(key, real_lengths, 40)
    assert set(np.asarray(drawn).tolist()) == {3, 5, 8}  # empirical lengths of users with data
    rnd = profiles.uniform_profiles(0, drawn, 20, targets=(4,))
    np.testing.assert_array_equal(rnd[:, np.arange(20) != 4].sum(1), drawn)  # L filler items each, besides
    assert np.all(rnd[:, 4] == 1)  # the target
    np.testing.assert_array_equal(profiles.sample_lengths(key, real_lengths, 40, "mean"), np.full(40, 5))  # round(mean)
    gen = lambda k, lengths: GANSample(None, jax.random.uniform(k, (lengths.shape[0], 20)), None)  # noqa: E731
    p, out = profiles.gan_profiles(gen, key, 40, real_lengths)
    s = out.scores
    assert p.shape == s.shape == (40, 20)
    # each GAN profile is the top-L of its own scores
    for row, sc in zip(np.asarray(p), np.asarray(s)):
        kept = np.flatnonzero(row)
        assert sc[kept].min() >= sc[row == 0].max()
    with pytest.raises(JaxrecError, match="unknown profile length mode"):
        profiles.sample_lengths(key, real_lengths, 3, "median")


def test_realism_figures():
    real = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 1, 1, 0]], np.float32)
    same = realism.realism_report(real, real)
    assert same["popularity_jsd"] == pytest.approx(0.0, abs=1e-12)
    assert same["length_ks"] == 0.0 and same["length_mean_diff"] == 0.0
    assert same["nn_cosine"] == pytest.approx(1.0, rel=1e-6)
    assert same["nn_cosine_real"] == pytest.approx(0.5, rel=1e-6)  # any two rows share 1 of 2 items
    disjoint = realism.realism_report(np.array([[0, 0, 0, 1]], np.float32), real)
    assert disjoint["popularity_jsd"] == pytest.approx(1.0)
    assert disjoint["nn_cosine"] == 0.0
    assert disjoint["length_mean_diff"] == 1.0 and disjoint["length_ks"] == 1.0
    assert realism.ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == pytest.approx(0.5)
