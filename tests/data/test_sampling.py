"""On-device negative sampling and the index shuffle."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_interactions

from jaxrec.data.interactions import Interactions
from jaxrec.data.sampling import index_shuffle, is_positive, positive_sets, sample_negatives
from jaxrec.errors import JaxrecError


@pytest.fixture(scope="module")
def inter():
    # skewed degrees, including a user with all but one item and a user with no items
    base = random_interactions(n_users=20, n_items=25, per_user=6, seed=1)
    users = np.concatenate([base.users, np.full(24, 20), []]).astype(int)
    items = np.concatenate([base.items, np.arange(24)]).astype(int)
    return Interactions(users, items, 22, 25)


@pytest.mark.parametrize("method", ["uniform", "popularity"])
def test_negatives_are_never_training_positives(inter, method):
    pos = positive_sets(inter, popularity_alpha=0.75 if method == "popularity" else None)
    users = jnp.asarray(np.tile(np.arange(22), 200), jnp.int32)
    neg = np.asarray(sample_negatives(jax.random.key(0), pos, users, 3, method))
    assert neg.shape == (users.shape[0], 3)
    assert neg.min() >= 0 and neg.max() < 25
    positives = set(zip(inter.users.tolist(), inter.items.tolist()))
    bad = [(u, i) for u, row in zip(np.asarray(users), neg) for i in row if (u, i) in positives]
    assert not bad
    assert np.all(neg[np.asarray(users) == 20] == 24)  # the only item user 20 lacks


def test_uniform_negatives_are_uniform_over_non_positives(inter):
    pos = positive_sets(inter)
    users = jnp.zeros(40000, jnp.int32)
    neg = np.asarray(sample_negatives(jax.random.key(1), pos, users, 1)).ravel()
    allowed = sorted(set(range(25)) - set(inter.items[inter.users == 0].tolist()))
    counts = np.bincount(neg, minlength=25)
    assert set(np.flatnonzero(counts)) == set(allowed)
    expected = len(neg) / len(allowed)
    chi2 = float(np.sum((counts[allowed] - expected) ** 2 / expected))
    assert chi2 < 60  # 18 degrees of freedom: p ~ 1e-6 at 60


def test_popularity_negatives_follow_popularity():
    # item 0 is popular, item 1 rare; user 3 has neither
    users = np.array([0, 1, 2, 0, 1, 2, 0])
    items = np.array([0, 0, 0, 2, 2, 2, 1])
    inter = Interactions(users, items, 4, 5)
    pos = positive_sets(inter, popularity_alpha=1.0)
    neg = np.asarray(sample_negatives(jax.random.key(2), pos, jnp.full(20000, 3, jnp.int32), 1, "popularity"))
    counts = np.bincount(neg.ravel(), minlength=5)
    assert counts[3] == counts[4] == 0  # zero popularity: never drawn
    np.testing.assert_allclose(counts[0] / counts[1], 3.0, rtol=0.15)


def test_is_positive(inter):
    pos = positive_sets(inter)
    u, i = jnp.asarray(inter.users), jnp.asarray(inter.items)
    assert bool(jnp.all(is_positive(pos, u, i)))
    assert not bool(jnp.any(is_positive(pos, jnp.full(25, 21), jnp.arange(25))))


def test_user_with_every_item_is_a_clear_error():
    inter = Interactions(np.zeros(3, int), np.arange(3), 1, 3, source="full.csv")
    with pytest.raises(JaxrecError, match="full.csv: user 0 interacted with every item"):
        positive_sets(inter)


def test_unknown_method_is_a_clear_error(inter):
    with pytest.raises(JaxrecError, match="unknown negative sampling method 'zipf'"):
        sample_negatives(jax.random.key(0), positive_sets(inter), jnp.zeros(2, jnp.int32), 1, "zipf")


@pytest.mark.parametrize("n", [1, 2, 7, 97, 2048 * 5, 4099])
def test_index_shuffle_is_a_permutation(n):
    perm = np.asarray(index_shuffle(jax.random.key(n), n))
    np.testing.assert_array_equal(np.sort(perm), np.arange(n))


def test_index_shuffle_depends_on_the_key_and_mixes():
    n = 2048 * 40
    a = np.asarray(index_shuffle(jax.random.key(1), n))
    b = np.asarray(index_shuffle(jax.random.key(1), n))
    c = np.asarray(index_shuffle(jax.random.key(2), n))
    np.testing.assert_array_equal(a, b)
    assert np.mean(a == c) < 0.01
    assert abs(np.corrcoef(a, np.arange(n))[0, 1]) < 0.02
    # the first batch draws from every block of the input about equally
    blocks = np.bincount(a[:2048] // 2048, minlength=40)
    assert blocks.min() > 20 and blocks.max() < 90
