"""Rated fake profiles: counts, filler, targets, rating values, the kinds' defining properties."""

from __future__ import annotations

import numpy as np
import pytest

from jaxrec.attacks.shilling import fake_profiles, rating_stats
from jaxrec.errors import JaxrecError

from conftest import rated_interactions


@pytest.fixture(scope="module")
def stats():
    return rating_stats(rated_interactions(n_users=200, n_items=50, per_user=10))


@pytest.mark.parametrize("kind", ["random", "average", "bandwagon"])
@pytest.mark.parametrize("intent", ["push", "nuke"])
def test_profiles_have_the_requested_count_filler_targets_and_ratings(stats, kind, intent):
    targets = [3, 17]
    p = fake_profiles(kind, 12, stats, targets, filler=9, seed=1, intent=intent, selected=4)
    assert p.shape == (12, 50) and p.dtype == np.float32
    rated = p > 0
    assert np.all(rated.sum(1) == 9 + len(targets))  # filler (+ selected) + targets
    np.testing.assert_array_equal(p[:, targets], 5.0 if intent == "push" else 1.0)
    values = p[rated]
    assert np.all(values == np.round(values)) and values.min() >= 1 and values.max() <= 5
    again = fake_profiles(kind, 12, stats, targets, filler=9, seed=1, intent=intent, selected=4)
    np.testing.assert_array_equal(p, again)  # seeded
    assert not np.array_equal(p, fake_profiles(kind, 12, stats, targets, filler=9, seed=2, intent=intent, selected=4))


def test_bandwagon_rates_the_most_popular_items_at_the_maximum(stats):
    targets = [int(np.argmax(stats.popularity))]  # the most popular item is a target: not "selected"
    p = fake_profiles("bandwagon", 5, stats, targets, filler=8, seed=0, selected=3)
    order = [i for i in np.argsort(-stats.popularity, kind="stable") if i not in targets]
    np.testing.assert_array_equal(p[:, order[:3]], 5.0)


def test_average_filler_follows_each_items_mean_and_random_the_global_one(stats):
    """Over many profiles, the average attack's filler ratings track the item means (and the
    random attack's do not)."""
    avg = fake_profiles("average", 400, stats, [0], filler=30, seed=3)
    rnd = fake_profiles("random", 400, stats, [0], filler=30, seed=3)
    items = np.arange(1, 50)

    def corr(p):
        rated = p[:, items] > 0
        means = (p[:, items] * rated).sum(0) / rated.sum(0)
        return np.corrcoef(means, stats.item_mean[items])[0, 1]

    assert corr(avg) > 0.9 and abs(corr(rnd)) < 0.3
    assert abs(rnd[:, items][rnd[:, items] > 0].mean() - stats.mean) < 0.1


def test_gan_profiles_rate_the_generators_filler(stats):
    filler = np.zeros((4, 50), np.float32)
    filler[:, [5, 6, 7]] = 1
    filler[:, 9] = 1  # a target in G's filler is rated as a target
    p = fake_profiles("gan", 4, stats, [9], filler=3, seed=0, filler_items=filler)
    np.testing.assert_array_equal(np.flatnonzero(p[0]), [5, 6, 7, 9])
    assert np.all(p[:, 9] == 5)


def test_bad_profile_requests_are_clear_errors(stats):
    with pytest.raises(JaxrecError, match=r"target items must be .* \[0, 50\)"):
        fake_profiles("random", 3, stats, [50], 5, 0)
    with pytest.raises(JaxrecError, match="filler size 60 exceeds"):
        fake_profiles("random", 3, stats, [1], 60, 0)
    with pytest.raises(JaxrecError, match="unknown attack 'shill'"):
        fake_profiles("shill", 3, stats, [1], 5, 0)
    with pytest.raises(JaxrecError, match="gan attack needs filler_items"):
        fake_profiles("gan", 3, stats, [1], 5, 0)
    with pytest.raises(JaxrecError, match="bandwagon: selected"):
        fake_profiles("bandwagon", 3, stats, [1], 5, 0, selected=6)
