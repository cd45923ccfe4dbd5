"""Fake profiles as injected, realism figures, and D's detector figures (hand-checked)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.adversarial import detector, realism
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
    rnd = profiles.random_profiles(key, 40, 20, real_lengths, targets=(4,))
    lengths = np.asarray(rnd[:, np.arange(20) != 4].sum(1))
    assert set(lengths.tolist()) <= {3, 5, 8}  # empirical lengths of users with data
    assert np.all(np.asarray(rnd[:, 4]) == 1)
    fixed = profiles.random_profiles(key, 40, 20, real_lengths, length_mode="mean")
    np.testing.assert_array_equal(fixed.sum(1), np.full(40, 5))  # round(mean(3, 3, 5, 8))
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


def test_auc_matches_hand_computed_example():
    # positives 0.9, 0.4, 0.6; negatives 0.1, 0.4, 0.5, 0.8.
    # pairs positive > negative: 0.9 beats all 4; 0.4 beats 0.1, ties 0.4 (1/2); 0.6 beats 0.1, 0.4, 0.5
    # -> (4 + 1.5 + 3) / 12
    scores = np.array([0.9, 0.4, 0.6, 0.1, 0.4, 0.5, 0.8])
    labels = np.array([1, 1, 1, 0, 0, 0, 0])
    assert detector.roc_auc(scores, labels) == pytest.approx(8.5 / 12)
    assert detector.roc_auc(-scores, labels) == pytest.approx(1 - 8.5 / 12)
    with pytest.raises(JaxrecError, match="both classes"):
        detector.roc_auc(scores, np.ones(7))


def test_threshold_from_clean_users_and_precision_recall():
    clean = np.arange(100) / 100.0  # 0.00 .. 0.99
    thr = detector.threshold_at_fpr(clean, 0.05)
    assert np.mean(clean > thr) <= 0.05
    rep = detector.detection_report(
        fake_scores=np.array([0.99, 0.97, 0.5]),
        real_scores=np.array([0.1, 0.2, 0.98, 0.3]),
        clean_scores=clean,
        target_fpr=0.05,
    )
    # threshold 0.95: flagged fakes 0.99, 0.97 and real 0.98
    assert rep["threshold"] == pytest.approx(0.95)
    assert rep["precision"] == pytest.approx(2 / 3) and rep["recall"] == pytest.approx(2 / 3)
    assert rep["fpr"] == pytest.approx(1 / 4) and rep["flagged"] == 3
    with pytest.raises(JaxrecError, match="false-positive rate must be in"):
        detector.threshold_at_fpr(clean, 0.0)
