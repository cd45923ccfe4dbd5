"""Splits: RecBole 1.2.1 per-user counts, determinism, partitions, temporal order, info counts."""

from __future__ import annotations

import numpy as np
import pytest

from jaxrec.data import Interactions, leave_one_out, random_ratio, recbole_split_counts, temporal_ratio
from jaxrec.errors import JaxrecError


def make(counts, seed=0, timestamps=True):
    """Users ``u`` with ``counts[u]`` rows each, rows shuffled, distinct items per user."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(len(counts)), counts)
    items = np.concatenate([rng.permutation(50)[:c] for c in counts])
    perm = rng.permutation(users.size)
    ts = rng.integers(0, 1000, users.size) if timestamps else None
    return Interactions(
        users=users[perm],
        items=items[perm],
        n_users=len(counts),
        n_items=50,
        timestamps=None if ts is None else ts[perm],
    )


@pytest.mark.parametrize(
    "total, ratios, expected",
    [
        (1, (0.8, 0.1, 0.1), [1, 0, 0]),
        (2, (0.8, 0.1, 0.1), [1, 0, 1]),
        (3, (0.8, 0.1, 0.1), [1, 1, 1]),
        (4, (0.8, 0.1, 0.1), [2, 1, 1]),
        (10, (0.8, 0.1, 0.1), [8, 1, 1]),
        (19, (0.8, 0.1, 0.1), [17, 1, 1]),
        (25, (0.8, 0.1, 0.1), [21, 2, 2]),
        (1, (0.8, 0.2), [1, 0]),
        (2, (0.8, 0.2), [1, 1]),
        (5, (0.8, 0.2), [4, 1]),
        (9, (0.8, 0.2), [8, 1]),
        (10, (8, 1, 1), [8, 1, 1]),  # ratios are normalised
        (3, (0.6, 0.2, 0.2), [1, 1, 1]),
    ],
)
def test_recbole_counts(total, ratios, expected):
    assert recbole_split_counts(total, ratios) == expected


def test_random_ratio_partitions_and_counts():
    counts = [1, 2, 3, 4, 10, 25, 37]
    inter = make(counts)
    s = random_ratio(inter, (0.8, 0.1, 0.1), seed=3)
    assert len(s.train) + len(s.valid) + len(s.test) == len(inter)
    for part in (s.train, s.valid, s.test):
        assert (part.n_users, part.n_items) == (inter.n_users, inter.n_items)
    # a partition of the rows: every (user, item) pair is in exactly one part
    key = lambda p: set(zip(p.users.tolist(), p.items.tolist()))  # noqa: E731
    assert key(s.train) | key(s.valid) | key(s.test) == key(inter)
    assert not (key(s.train) & key(s.test)) and not (key(s.valid) & key(s.test))
    for u, c in enumerate(counts):
        got = [int(p.user_counts()[u]) for p in (s.train, s.valid, s.test)]
        assert got == recbole_split_counts(c, (0.8, 0.1, 0.1))
    assert s.info["users"] == 7
    assert s.info["users_with_test"] == 6  # the user with 1 row is train only
    assert s.info["users_with_valid"] == 5  # and the one with 2 rows has no valid row
    assert s.info["users_train_only"] == 1
    assert (s.info["train"], s.info["valid"], s.info["test"]) == (len(s.train), len(s.valid), len(s.test))
    assert s.info["seed"] == 3


def test_random_ratio_is_seeded():
    inter = make([30] * 20)
    a, b = random_ratio(inter, seed=7), random_ratio(inter, seed=7)
    for x, y in ((a.train, b.train), (a.valid, b.valid), (a.test, b.test)):
        np.testing.assert_array_equal(x.users, y.users)
        np.testing.assert_array_equal(x.items, y.items)
    c = random_ratio(inter, seed=8)
    assert not np.array_equal(a.test.items, c.test.items)


def test_random_ratio_two_parts():
    s = random_ratio(make([5, 10, 1]), (0.8, 0.2), seed=0)
    assert s.valid is None
    np.testing.assert_array_equal(s.test.user_counts(), [1, 2, 0])
    assert s.info["users_with_valid"] == 0 and s.info["users_train_only"] == 1


def test_rows_keep_their_columns():
    inter = make([6, 6])
    inter = Interactions(
        users=inter.users,
        items=inter.items,
        n_users=2,
        n_items=50,
        ratings=np.arange(12, dtype=float),
        timestamps=inter.timestamps,
    )
    s = random_ratio(inter, seed=1)
    for p in (s.train, s.valid, s.test):
        row = {(u, i): k for k, (u, i) in enumerate(zip(inter.users, inter.items))}
        idx = [row[(u, i)] for u, i in zip(p.users, p.items)]
        np.testing.assert_array_equal(p.ratings, inter.ratings[idx])
        np.testing.assert_array_equal(p.timestamps, inter.timestamps[idx])
        assert idx == sorted(idx)  # original row order within a part


def test_no_user_with_test_raises():
    with pytest.raises(JaxrecError, match="no user with a test item"):
        random_ratio(make([1, 1, 1]))


@pytest.mark.parametrize("ratios", [(0.8,), (0.5, 0.2, 0.2, 0.1), (0.8, -0.1, 0.3), (0.8, 0.2, 0.0), (0, 1)])
def test_bad_ratios(ratios):
    with pytest.raises(JaxrecError, match="ratios"):
        random_ratio(make([10]), ratios)


def test_temporal_ratio_takes_latest_as_test():
    inter = make([10, 20, 3], seed=4)
    s = temporal_ratio(inter, (0.8, 0.1, 0.1))
    for u in range(3):
        t = lambda p, u=u: p.timestamps[p.users == u]  # noqa: E731
        if t(s.valid).size:
            assert t(s.train).max() <= t(s.valid).min()
        assert max(t(s.train).max(), t(s.valid).max(initial=-1)) <= t(s.test).min()
    np.testing.assert_array_equal(s.test.user_counts(), [1, 2, 1])


def test_temporal_ties_by_row_order():
    users = np.zeros(5, dtype=int)
    inter = Interactions(users=users, items=np.arange(5), n_users=1, n_items=5, timestamps=np.full(5, 7))
    s = temporal_ratio(inter, (0.6, 0.2, 0.2))
    np.testing.assert_array_equal(s.train.items, [0, 1, 2])
    np.testing.assert_array_equal(s.valid.items, [3])
    np.testing.assert_array_equal(s.test.items, [4])


def test_temporal_needs_timestamps():
    with pytest.raises(JaxrecError, match="timestamps"):
        temporal_ratio(make([5], timestamps=False))
    with pytest.raises(JaxrecError, match="timestamps"):
        leave_one_out(make([5], timestamps=False))


def test_leave_one_out():
    # user 0: 4 rows, user 1: 2 rows, user 2: 1 row
    users = np.array([0, 1, 0, 2, 0, 1, 0])
    items = np.array([0, 1, 2, 3, 4, 5, 6])
    ts = np.array([5, 1, 9, 3, 7, 0, 9])  # user 0: items 0(5), 2(9), 4(7), 6(9): tie at 9, row order
    inter = Interactions(users=users, items=items, n_users=3, n_items=7, timestamps=ts)
    s = leave_one_out(inter)
    np.testing.assert_array_equal(s.test.items, [1, 6])  # latest per user, in row order
    np.testing.assert_array_equal(s.test.users, [1, 0])
    np.testing.assert_array_equal(s.valid.items, [2])
    np.testing.assert_array_equal(sorted(s.train.items), [0, 3, 4, 5])
    assert s.info["users_with_test"] == 2 and s.info["users_with_valid"] == 1
    assert s.info["users_train_only"] == 1
    s2 = leave_one_out(inter, valid=False)
    assert s2.valid is None
    np.testing.assert_array_equal(sorted(s2.train.items), [0, 2, 3, 4, 5])
