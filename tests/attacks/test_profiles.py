"""Rated fake profiles: counts, filler, targets, rating values, the kinds' defining properties."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import rated_interactions

from jaxrec.attacks.shilling import fake_profiles, rating_stats
from jaxrec.errors import JaxrecError


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


@pytest.mark.parametrize("kind", ["random", "average", "bandwagon"])
def test_per_profile_filler_sizes_give_exactly_those_profile_lengths(stats, kind):
    targets = [3, 17]
    sizes = np.array([4, 9, 5, 12, 4, 7, 30, 6])
    p = fake_profiles(kind, sizes.size, stats, targets, filler=sizes, seed=5, selected=4)
    np.testing.assert_array_equal((p > 0).sum(1), sizes + len(targets))
    np.testing.assert_array_equal(p[:, targets], 5.0)
    if kind == "bandwagon":  # every profile's filler holds the 4 most popular non-target items
        order = [i for i in np.argsort(-stats.popularity, kind="stable") if i not in targets]
        np.testing.assert_array_equal(p[:, order[:4]], 5.0)
    np.testing.assert_array_equal(p, fake_profiles(kind, sizes.size, stats, targets, sizes, seed=5, selected=4))


@pytest.mark.parametrize("kind", ["random", "average", "bandwagon", "gan"])
def test_no_targets_force_no_item(stats, kind):
    n, filler = 30, 6
    items = None
    if kind == "gan":
        items = np.zeros((n, 50), np.float32)
        items[np.arange(n)[:, None], (np.arange(n)[:, None] + np.arange(filler)) % 50] = 1
    p = fake_profiles(kind, n, stats, [], filler, seed=0, selected=2, filler_items=items)
    np.testing.assert_array_equal((p > 0).sum(1), filler)
    every_row = np.flatnonzero((p > 0).all(0))  # only bandwagon's selected items are in every profile
    assert every_row.size == (2 if kind == "bandwagon" else 0)
    sizes = np.arange(n) % 5 + 2
    q = fake_profiles(kind, n, stats, np.array([], np.int64), sizes, seed=0, selected=2, filler_items=items)
    if kind != "gan":  # G's filler, not the size, decides the gan profiles
        np.testing.assert_array_equal((q > 0).sum(1), sizes)


@pytest.mark.parametrize("intent", ["push", "nuke"])
def test_gan_filler_ratings_are_the_generators_own_rounded_and_clipped(stats, intent):
    rng = np.random.default_rng(0)
    chosen = rng.random((6, 50)) < 0.3
    chosen[:, [9, 21]] = True  # the targets in G's filler are rated as targets
    given = rng.uniform(-1.0, 7.0, (6, 50))  # outside [1, 5] too: clipped
    kw = dict(filler_items=chosen.astype(np.float32), filler_ratings=given, intent=intent)
    p = fake_profiles("gan", 6, stats, [9, 21], 5, seed=0, **kw)
    filler = chosen.copy()
    filler[:, [9, 21]] = False
    np.testing.assert_array_equal(p[filler], np.clip(np.round(given[filler]), 1, 5))
    np.testing.assert_array_equal(p[:, [9, 21]], 5.0 if intent == "push" else 1.0)
    assert np.all(p[~chosen] == 0)
    np.testing.assert_array_equal(p, fake_profiles("gan", 6, stats, [9, 21], 5, seed=1, **kw))  # no draw
    average = fake_profiles("gan", 6, stats, [9, 21], 5, seed=0, filler_items=chosen.astype(np.float32), intent=intent)
    assert not np.array_equal(p, average)  # without them, the average-attack draw as before


def test_bad_filler_sizes_targets_and_gan_ratings_are_clear_errors(stats):
    with pytest.raises(JaxrecError, match=r"int array of shape \(3,\)"):
        fake_profiles("random", 3, stats, [1], np.array([4, 5]), 0)
    with pytest.raises(JaxrecError, match=r"int array of shape \(3,\), got float64"):
        fake_profiles("random", 3, stats, [1], np.array([4.0, 5.0, 6.0]), 0)
    with pytest.raises(JaxrecError, match=r">= 1 filler item, got 3 and filler sizes \[4, 0, 6\]"):
        fake_profiles("random", 3, stats, [1], np.array([4, 0, 6]), 0)
    with pytest.raises(JaxrecError, match="filler sizes up to 50 exceed the 49 non-target items"):
        fake_profiles("average", 3, stats, [1], np.array([4, 50, 6]), 0)
    with pytest.raises(JaxrecError, match=r"bandwagon: selected items must be in \[1, filler=3\], got 4"):
        fake_profiles("bandwagon", 3, stats, [1], np.array([5, 3, 6]), 0, selected=4)
    with pytest.raises(JaxrecError, match=r"target items must be .* \[0, 50\), got \[-1\]"):
        fake_profiles("random", 3, stats, [-1], 5, 0)
    items = np.ones((3, 50), np.float32)
    with pytest.raises(JaxrecError, match="filler_ratings are for the gan attack only, not 'average'"):
        fake_profiles("average", 3, stats, [1], 5, 0, filler_ratings=np.ones((3, 50)))
    with pytest.raises(JaxrecError, match=r"filler_ratings must have shape \(3, 50\), got \(3, 49\)"):
        fake_profiles("gan", 3, stats, [1], 5, 0, filler_items=items, filler_ratings=np.ones((3, 49)))
    bad = np.ones((3, 50))
    bad[0, 4] = np.nan
    with pytest.raises(JaxrecError, match="filler_ratings must be finite"):
        fake_profiles("gan", 3, stats, [1], 5, 0, filler_items=items, filler_ratings=bad)
