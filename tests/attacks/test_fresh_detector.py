"""The fresh (after-the-fact) fake-profile detector: out-of-fold AUC on synthetic profiles."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.attacks import fresh_detector as fd
from jaxrec.attacks.detection import roc_auc
from jaxrec.errors import JaxrecError


def bernoulli(rng, n, p):
    """``[n, len(p)]`` 0/1 profiles, item j rated with probability ``p[j]``."""
    return (rng.random((n, len(p))) < p).astype(np.float32)


# item probabilities with a popular head: 10 items at 0.5, 40 at 0.025 (mean length 6)
POPULAR = np.r_[np.full(10, 0.5), np.full(40, 0.025)]


def test_identical_distributions_are_indistinguishable():
    rng = np.random.default_rng(1)
    out = fd.fresh_detector(bernoulli(rng, 200, POPULAR), bernoulli(rng, 200, POPULAR))
    assert abs(out["auc"] - 0.5) < 0.1
    assert out["n_real"] == 200 and out["n_fake"] == 200 and len(out["auc_folds"]) == 5


def test_uniform_fakes_against_popular_real_users_are_separable():
    rng = np.random.default_rng(2)
    real = bernoulli(rng, 200, POPULAR)
    fake = bernoulli(rng, 200, np.full(50, POPULAR.mean()))  # same expected length, uniform items
    out = fd.fresh_detector(real, fake)
    assert out["auc"] > 0.95
    assert min(out["auc_folds"]) > 0.85


def test_a_difference_in_length_alone_is_detected():
    rng = np.random.default_rng(3)
    # same item distribution (probabilities proportional), fakes twice as long (24 vs 12 items)
    p = np.r_[np.full(10, 0.3), np.full(90, 0.1)]
    out = fd.fresh_detector(bernoulli(rng, 200, p), bernoulli(rng, 200, 2 * p))
    assert out["auc"] > 0.9


def test_rows_never_score_themselves():
    # random labels on random rows, more features (400 items + 5) than rows (200): fitted
    # in-sample the model separates them perfectly, out of fold it cannot
    rng = np.random.default_rng(4)
    x = bernoulli(rng, 200, np.full(400, 0.1))
    out = fd.fresh_detector(x[:100], x[100:], l2=1e-3)
    assert abs(out["auc"] - 0.5) < 0.15
    feats = np.concatenate([x, fd.profile_features(x, x.sum(0))], axis=1)
    y = np.r_[np.zeros(100), np.ones(100)]
    in_sample = fd._fit_scores(
        jnp.asarray(feats), jnp.asarray(y, jnp.float32), jnp.ones((1, 200)), 1e-3, steps=300, lr=0.05
    )
    in_sample = np.asarray(in_sample[0])
    assert roc_auc(in_sample[y == 1], in_sample[y == 0]) > 0.99


def test_profile_features_by_hand():
    pop = np.array([3.0, 1.0, 0.0, 7.0])  # log1p: 2 ln2, ln2, 0, 3 ln2
    x = np.array([[1, 0, 0, 1], [0.5, 1.0, 0, 0], [0, 0, 0, 0]], np.float32)
    ln2, ln3 = np.log(2.0), np.log(3.0)
    want = [
        [ln3, 2.5 * ln2, 0.5 * ln2, 1.0, 0.0],  # 0/1 row: values constant 1
        [ln3, 1.5 * ln2, 0.5 * ln2, 0.75, 0.25],
        [0.0, 0.0, 0.0, 0.0, 0.0],  # empty row: zeros, not NaN
    ]
    got = fd.profile_features(x, pop)
    assert got.shape == (3, len(fd.FEATURE_NAMES))
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_seeded():
    rng = np.random.default_rng(5)
    real, fake = bernoulli(rng, 40, POPULAR), bernoulli(rng, 40, 1.5 * POPULAR)
    a = fd.fresh_detector(real, fake, folds=4, seed=7, steps=50)
    assert a == fd.fresh_detector(real, fake, folds=4, seed=7, steps=50)
    assert a["auc_folds"] != fd.fresh_detector(real, fake, folds=4, seed=8, steps=50)["auc_folds"]


@pytest.mark.parametrize(
    ("real", "fake", "kw", "match"),
    [
        (np.zeros((10, 5)), np.zeros((10, 6)), {}, r"same number of items, got 5 and 6"),
        (np.zeros(10), np.zeros((10, 5)), {}, r"2-D \[users, items\] matrices"),
        (np.zeros((10, 5)), np.zeros((10, 5)), {"folds": 1}, r"at least 2 folds, got 1"),
        (np.zeros((10, 5)), np.zeros((3, 5)), {}, r"at least 5 rows per class, got 10 real and 3 fake"),
    ],
)
def test_bad_input_is_named(real, fake, kw, match):
    with pytest.raises(JaxrecError, match=match):
        fd.fresh_detector(real, fake, **kw)
