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


def _loaded(tmp_path, kind):
    """A tiny file with integer item ids (with gaps) read by the real loader of ``kind``."""
    from jaxrec.data import read_lightgcn, read_ml100k, read_movielens_dat, read_table

    rows = [(1, 50, 4), (2, 50, 3), (1, 7, 5), (3, 900, 2), (2, 7, 1)]
    if kind == "ml-100k":
        (tmp_path / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t88{u}\n" for u, i, r in rows))
        return read_ml100k(tmp_path / "u.data")
    if kind == "ml-1m":
        (tmp_path / "ratings.dat").write_text("".join(f"{u}::{i}::{r}::88{u}\n" for u, i, r in rows))
        return read_movielens_dat(tmp_path / "ratings.dat")
    if kind == "csv":
        (tmp_path / "r.csv").write_text("user,item,rating\n" + "".join(f"{u},{i},{r}\n" for u, i, r in rows))
        return read_table(tmp_path / "r.csv", user_col="user", item_col="item", rating_col="rating")
    (tmp_path / "train.txt").write_text("0 50 7\n1 900\n")  # LightGCN: user then items
    (tmp_path / "test.txt").write_text("0 900\n1 7\n")
    return read_lightgcn(tmp_path).train


@pytest.mark.parametrize("kind", ["ml-100k", "ml-1m", "csv", "lightgcn"])
def test_integer_raw_ids_of_every_loader_are_targets_given_as_numbers_or_text(tmp_path, kind):
    inter = _loaded(tmp_path, kind)
    assert np.issubdtype(inter.item_ids.dtype, np.integer)  # the loaders keep MovieLens/Gowalla ids as integers
    want = [int(np.flatnonzero(inter.item_ids == 50)[0]), int(np.flatnonzero(inter.item_ids == 900)[0])]
    np.testing.assert_array_equal(poison.target_indices([50, 900], inter), want)
    np.testing.assert_array_equal(poison.target_indices(["50", "900"], inter), want)
    with pytest.raises(JaxrecError, match="target item 5000 is not an item"):
        poison.target_indices([5000], inter)
