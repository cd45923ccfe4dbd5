"""Preprocessing: implicit feedback, deduplication, k-core, id compaction."""

from __future__ import annotations

import numpy as np
import pytest

from jaxrec.data import Interactions, compact, deduplicate, kcore, to_implicit
from jaxrec.errors import JaxrecError


def inter_with_raw(users, items, ratings=None, timestamps=None):
    users, items = np.asarray(users), np.asarray(items)
    nu, ni = users.max() + 1, items.max() + 1
    return Interactions(
        users=users,
        items=items,
        n_users=nu,
        n_items=ni,
        ratings=ratings,
        timestamps=timestamps,
        user_ids=np.array([f"u{k}" for k in range(nu)]),
        item_ids=np.array([f"i{k}" for k in range(ni)]),
    )


def raw_pairs(x):
    return sorted(zip(x.user_ids[x.users].tolist(), x.item_ids[x.items].tolist()))


def test_to_implicit_none_keeps_everything():
    x = inter_with_raw([0, 1, 2], [0, 1, 1], ratings=np.array([1.0, 4, 5]))
    y = to_implicit(x)
    assert len(y) == 3 and y.ratings is None and y.n_users == 3
    assert x.ratings is not None  # the input is unchanged


def test_to_implicit_threshold_compacts_ids():
    x = inter_with_raw([0, 1, 2, 2], [0, 1, 1, 2], ratings=np.array([5.0, 1, 4, 3.5]))
    y = to_implicit(x, threshold=4)
    assert raw_pairs(y) == [("u0", "i0"), ("u2", "i1")]
    assert (y.n_users, y.n_items) == (2, 2)
    np.testing.assert_array_equal(y.user_ids, ["u0", "u2"])
    np.testing.assert_array_equal(y.item_ids, ["i0", "i1"])
    z = to_implicit(x, threshold=4, compact=False)
    assert (z.n_users, z.n_items) == (3, 3) and raw_pairs(z) == raw_pairs(y)


def test_to_implicit_errors():
    x = inter_with_raw([0, 1], [0, 1])
    with pytest.raises(JaxrecError, match="needs ratings"):
        to_implicit(x, threshold=3)
    x = inter_with_raw([0, 1], [0, 1], ratings=np.array([1.0, 2]))
    with pytest.raises(JaxrecError, match="no interactions left"):
        to_implicit(x, threshold=3)


def test_deduplicate_by_timestamp():
    x = inter_with_raw([0, 0, 0, 1], [1, 1, 2, 1], ratings=np.array([1.0, 2, 3, 4]), timestamps=np.array([10, 5, 1, 1]))
    last = deduplicate(x, keep="last")
    np.testing.assert_array_equal(last.ratings, [1, 3, 4])  # (0,1) latest is row 0 (t=10)
    first = deduplicate(x, keep="first")
    np.testing.assert_array_equal(first.ratings, [2, 3, 4])
    assert last.n_users == x.n_users and last.n_items == x.n_items


def test_deduplicate_by_row_order_and_ties():
    x = inter_with_raw([0, 0, 1, 0], [1, 1, 1, 1], ratings=np.array([1.0, 2, 3, 4]))
    np.testing.assert_array_equal(deduplicate(x).ratings, [3, 4])
    np.testing.assert_array_equal(deduplicate(x, keep="first").ratings, [1, 3])
    tied = inter_with_raw([0, 0], [1, 1], ratings=np.array([1.0, 2]), timestamps=np.array([5, 5]))
    np.testing.assert_array_equal(deduplicate(tied).ratings, [2])
    with pytest.raises(JaxrecError):
        deduplicate(x, keep="middle")


def test_kcore_reaches_fixed_point():
    # item 3 has 1 row -> dropped; then user 2 has 1 row -> dropped; then item 2 has 1 -> dropped ...
    users = [0, 0, 0, 1, 1, 1, 2, 2, 3]
    items = [0, 1, 2, 0, 1, 2, 2, 3, 0]
    x = inter_with_raw(users, items)
    y = kcore(x, user_k=2, item_k=2)
    assert raw_pairs(y) == [("u0", "i0"), ("u0", "i1"), ("u0", "i2"), ("u1", "i0"), ("u1", "i1"), ("u1", "i2")]
    assert np.all(y.user_counts() >= 2) and np.all(y.item_counts() >= 2)
    assert (y.n_users, y.n_items) == (2, 3)
    # fixed point: applying again changes nothing
    assert raw_pairs(kcore(y, 2, 2)) == raw_pairs(y)
    assert len(kcore(x, user_k=3, item_k=1)) == 6  # users 0 and 1 only


def test_kcore_cascade_to_nothing():
    x = inter_with_raw([0, 1, 2], [0, 1, 2])
    with pytest.raises(JaxrecError, match="no interactions left"):
        kcore(x, 2, 2)
    assert len(kcore(x, 0, 0)) == 3


def test_compact_keeps_raw_ids_consistent():
    x = Interactions(
        users=np.array([4, 1]),
        items=np.array([0, 5]),
        n_users=6,
        n_items=7,
        ratings=np.array([1.0, 2]),
        timestamps=np.array([3, 4]),
    )
    y = compact(x)
    assert (y.n_users, y.n_items) == (2, 2)
    np.testing.assert_array_equal(y.user_ids[y.users], [4, 1])
    np.testing.assert_array_equal(y.item_ids[y.items], [0, 5])
    np.testing.assert_array_equal(y.ratings, [1, 2])
