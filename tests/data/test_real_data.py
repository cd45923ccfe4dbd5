"""Integration tests on the real data in ``$JAXREC_DATA_DIR`` (ml-100k/u.data, gowalla/*.txt).

Skipped when the variable is unset or the data is missing, except under ``CI=true`` where that is
a failure: CI must run them.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from conftest import real_data_dir

from jaxrec.data import describe, load_dataset, random_ratio, read_lightgcn, read_ml100k, recbole_split_counts

pytestmark = pytest.mark.integration


def _data_dir(*needed: str) -> Path:
    return real_data_dir(*needed)


@pytest.fixture(scope="module")
def ml100k():
    return read_ml100k(_data_dir("ml-100k/u.data") / "ml-100k" / "u.data")


def test_ml100k_counts_and_ratings(ml100k):
    assert (ml100k.n_users, ml100k.n_items, len(ml100k)) == (943, 1682, 100000)
    info = describe(ml100k)
    # the histogram from shared/data/README.md
    assert info["ratings"]["histogram"] == {"1": 6110, "2": 11370, "3": 27145, "4": 34174, "5": 21201}
    assert info["timestamps"] == {"min": 874724710, "max": 893286638}
    np.testing.assert_array_equal(ml100k.user_ids, np.arange(1, 944))
    np.testing.assert_array_equal(ml100k.item_ids, np.arange(1, 1683))
    # first line of the file: 196 242 3 881250949
    assert (ml100k.user_ids[ml100k.users[0]], ml100k.item_ids[ml100k.items[0]]) == (196, 242)
    assert ml100k.ratings[0] == 3 and ml100k.timestamps[0] == 881250949


def test_ml100k_by_name(ml100k, monkeypatch):
    monkeypatch.setenv("JAXREC_OFFLINE", "1")
    inter = load_dataset("ml-100k")
    np.testing.assert_array_equal(inter.users, ml100k.users)


def test_ml100k_recbole_811_split(ml100k):
    s = random_ratio(ml100k, (0.8, 0.1, 0.1), seed=2020)
    # sizes follow from RecBole 1.2.1's per-user rule alone (every user has >= 20 ratings)
    expected = np.array([recbole_split_counts(int(c), (0.8, 0.1, 0.1)) for c in ml100k.user_counts()]).sum(0)
    assert tuple(expected) == (80808, 9596, 9596)
    assert (len(s.train), len(s.valid), len(s.test)) == (80808, 9596, 9596)
    assert len(s.train) + len(s.valid) + len(s.test) == 100000
    assert s.info["users"] == s.info["users_with_test"] == s.info["users_with_valid"] == 943
    assert s.info["users_train_only"] == 0
    assert np.all(s.test.user_counts() >= 2) and np.all(s.train.user_counts() >= 16)
    # no (user, item) pair in two parts (ml-100k has no duplicate pairs)
    keys = [p.users.astype(np.int64) * p.n_items + p.items for p in (s.train, s.valid, s.test)]
    assert np.unique(np.concatenate(keys)).size == 100000
    # seeded determinism
    again = random_ratio(ml100k, (0.8, 0.1, 0.1), seed=2020)
    np.testing.assert_array_equal(again.test.items, s.test.items)
    np.testing.assert_array_equal(again.valid.items, s.valid.items)
    other = random_ratio(ml100k, (0.8, 0.1, 0.1), seed=2021)
    assert not np.array_equal(other.test.items, s.test.items)


def test_gowalla_counts_and_speed():
    root = _data_dir("gowalla/train.txt", "gowalla/test.txt") / "gowalla"
    t0 = time.perf_counter()
    s = read_lightgcn(root)
    seconds = time.perf_counter() - t0
    assert (s.n_users, s.n_items) == (29858, 40981)
    assert (len(s.train), len(s.test)) == (810128, 217242)
    assert s.valid is None
    assert s.info["users_with_test"] == 29858 and s.info["users_train_only"] == 0
    assert s.train.user_counts().min() == 8 and s.train.user_counts().max() == 811
    assert s.test.user_counts().min() == 1 and s.test.user_counts().max() == 203
    assert np.all(s.train.item_counts() > 0)
    assert seconds < 5.0, f"reading Gowalla took {seconds:.2f} s"  # ~0.6 s here; generous for CI
