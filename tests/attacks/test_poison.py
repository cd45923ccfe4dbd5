"""Injection keeps every id: the target stays the same item, fake users are new users."""

from __future__ import annotations

import numpy as np
import pytest

from jaxrec.attacks import poison
from jaxrec.attacks.shilling import fake_profiles, rating_stats
from jaxrec.errors import JaxrecError


def test_injection_and_thresholding_keep_every_id(rated_split):
    train = rated_split.train
    n_real = train.n_users
    wide = poison.widen(train, n_real + 5)
    assert wide.user_ids[:n_real].tolist() == train.user_ids.tolist()
    assert wide.user_ids[n_real:].tolist() == [f"fake-{i}" for i in range(5)]
    # an item only the fakes rate, and one nobody rates >= 4: both must keep their index
    targets = [7]
    p = fake_profiles("random", 3, rating_stats(train), targets, filler=4, seed=0)
    poisoned = poison.inject(wide, p, n_real)
    assert (poisoned.n_users, poisoned.n_items) == (n_real + 5, train.n_items)
    assert len(poisoned) == len(train) + int((p > 0).sum())
    fake_rows = poisoned.users >= n_real
    assert set(poisoned.users[fake_rows].tolist()) == {n_real, n_real + 1, n_real + 2}
    np.testing.assert_array_equal(poisoned.ratings[fake_rows], p[np.nonzero(p)])
    pos = poison.positives(poisoned, 4.0)
    assert (pos.n_users, pos.n_items) == (poisoned.n_users, poisoned.n_items)
    assert pos.item_ids[7] == train.item_ids[7] == "i7"
    assert np.sum((pos.users >= n_real) & (pos.items == 7)) == 3  # every fake's target is a positive
    # items and users left without a positive keep their place (a compacting filter would renumber)
    assert np.any(pos.item_counts() == 0) and np.all(pos.user_counts()[n_real + 3 :] == 0)
    assert pos.item_ids.tolist() == train.item_ids.tolist()


def test_inject_refuses_to_overwrite_users_or_overflow_slots(rated_split):
    train = rated_split.train
    p = np.zeros((2, train.n_items), np.float32)
    p[:, 0] = 5
    with pytest.raises(JaxrecError, match="exceed the"):
        poison.inject(poison.widen(train, train.n_users + 1), p, train.n_users)
    with pytest.raises(JaxrecError, match="already have interactions"):
        poison.inject(poison.widen(train, train.n_users + 2), p, train.n_users - 1)


def test_targets_are_drawn_from_the_requested_popularity_half(rated_split):
    pos = poison.positives(rated_split.train, 4.0)
    counts = pos.item_counts()
    rated = np.flatnonzero(counts > 0)
    unpopular = poison.pick_targets(pos, 5, "unpopular", seed=0)
    popular = poison.pick_targets(pos, 5, "popular", seed=0)
    assert len(set(unpopular.tolist())) == 5 and np.all(counts[unpopular] > 0)
    assert counts[unpopular].max() <= np.median(counts[rated]) <= counts[popular].min()
    np.testing.assert_array_equal(unpopular, poison.pick_targets(pos, 5, "unpopular", seed=0))
    with pytest.raises(JaxrecError, match="cannot draw 100 target items"):
        poison.pick_targets(pos, 100, "unpopular", 0)


def test_raw_target_ids_map_to_indices_and_unknown_ids_are_errors(rated_split):
    np.testing.assert_array_equal(poison.target_indices(["i4", "i12"], rated_split.train), [4, 12])
    with pytest.raises(JaxrecError, match="'i99' is not an item"):
        poison.target_indices(["i99"], rated_split.train)
