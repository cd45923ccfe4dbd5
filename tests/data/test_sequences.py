"""Sequences as data: event order (ties keep file order), the two leave-one-out rules, history
windows and training windows, against hand-made files."""

from __future__ import annotations

import numpy as np
import pytest

from jaxrec.config import DataConfig
from jaxrec.data import leave_one_out
from jaxrec.data.interactions import Interactions
from jaxrec.data.loaders import read_sasrec
from jaxrec.data.sequences import histories, training_windows
from jaxrec.errors import JaxrecError
from jaxrec.experiment.data import load_split

# user, item, time: user 1's events at t=5 tie (file order a then b); user 1 re-consumes c
CSV = """user_id,item_id,timestamp
1,c,9
1,a,5
2,a,1
1,b,5
2,b,2
1,c,3
3,a,1
3,b,2
"""


def test_leave_one_out_on_a_hand_made_file_with_ties_and_duplicates(tmp_path):
    path = tmp_path / "ev.csv"
    path.write_text(CSV)
    cfg = DataConfig(dataset=str(path), time_col="timestamp", split="leave_one_out")
    split = load_split(cfg, sequential=True)  # deduplicate defaults to false: c twice is 2 events
    items = split.train.item_ids
    name = lambda part, u: [str(items[i]) for i in part.items[part.users == u]]  # noqa: E731
    # user 1 in time order: c(3) a(5) b(5) c(9): test c, valid b (after a: ties keep file order)
    assert name(split.test, 0) == ["c"] and name(split.valid, 0) == ["b"]
    assert sorted(name(split.train, 0)) == ["a", "c"]
    # RecBole's rule: users with 2 events give train + test, no validation
    assert name(split.test, 1) == ["b"] and name(split.valid, 1) == [] and name(split.train, 1) == ["a"]
    # the history of the test query is train + valid in event order, right-aligned, padded
    h = histories([split.train, split.valid], "time", 4)
    pad = split.n_items
    assert [str(items[i]) if i != pad else "-" for i in h[0]] == ["-", "c", "a", "b"]
    # the embedding models' default still deduplicates: user 1 then has 3 distinct items
    dedup = load_split(cfg, sequential=False)
    assert int((dedup.train.users == 0).sum() + (dedup.valid.users == 0).sum() + (dedup.test.users == 0).sum()) == 3


def test_sasrec_rule_keeps_short_users_in_training():
    inter = Interactions(np.array([0, 0, 1, 1, 1]), np.array([0, 1, 0, 1, 2]), 2, 3, timestamps=np.arange(5))
    sas = leave_one_out(inter, rule="sasrec")
    rec = leave_one_out(inter, rule="recbole")
    assert sas.info["users_train_only"] == 1 and len(sas.test) == 1
    assert rec.info["users_train_only"] == 0 and len(rec.test) == 2


def test_no_timestamps_needs_file_order(tmp_path):
    path = tmp_path / "ev.csv"
    path.write_text("user_id,item_id\n1,a\n1,b\n1,c\n")
    with pytest.raises(JaxrecError, match="data.order: .*no timestamps.*data.order: file"):
        load_split(DataConfig(dataset=str(path), split="leave_one_out"), sequential=True)
    split = load_split(DataConfig(dataset=str(path), split="leave_one_out", order="file"), sequential=True)
    assert [split.train.item_ids[i] for i in split.test.items] == ["c"]
    two = tmp_path / "two.csv"
    two.write_text("user_id,item_id\n1,a\n1,b\n2,a\n2,b\n")
    with pytest.raises(JaxrecError, match="data.loo_rule: no user"):
        load_split(
            DataConfig(dataset=str(two), split="leave_one_out", order="file", loo_rule="sasrec"), sequential=True
        )


def test_sequence_models_need_leave_one_out(tmp_path):
    path = tmp_path / "ev.csv"
    path.write_text(CSV)
    with pytest.raises(JaxrecError, match="data.split: 'random'.*leave_one_out"):
        load_split(DataConfig(dataset=str(path), time_col="timestamp"), sequential=True)


def test_training_windows_by_hand():
    # one user with 7 events e0..e6 (items 0..6), max_len 3, all windows
    inter = Interactions(np.zeros(7, int), np.arange(7), 1, 8, timestamps=np.arange(7))
    users, inp, tgt = training_windows(inter, "time", 3, "all")
    P = 8
    # targets e1..e6, most recent window first: [e4 e5 e6] <- [e3 e4 e5]; [e1 e2 e3] <- [e0 e1 e2]
    np.testing.assert_array_equal(tgt, [[4, 5, 6], [1, 2, 3]])
    np.testing.assert_array_equal(inp, [[3, 4, 5], [0, 1, 2]])
    np.testing.assert_array_equal(users, [0, 0])
    # a short user: 3 events, max_len 4: targets e1 e2 with inputs e0 e1; e0 is no target
    short = Interactions(np.zeros(3, int), np.arange(3), 1, 8, timestamps=np.arange(3))
    _, inp, tgt = training_windows(short, "time", 4, "all")
    np.testing.assert_array_equal(tgt, [[P, P, 1, 2]])
    np.testing.assert_array_equal(inp, [[P, P, 0, 1]])
    _, inp, tgt = training_windows(inter, "time", 3, "last")
    np.testing.assert_array_equal(tgt, [[4, 5, 6]])


def test_read_sasrec_keeps_file_order(tmp_path):
    path = tmp_path / "Toy.txt"
    path.write_text("1 5\n1 3\n2 5\n1 9\n")
    inter = read_sasrec(path)
    assert inter.timestamps is None and (inter.n_users, inter.n_items) == (2, 3)
    split = leave_one_out(inter, valid=False, order="file")
    assert [int(inter.item_ids[i]) for i in split.test.items] == [9]  # user 2 has one event: train only
    with pytest.raises(JaxrecError, match=r"Toy.txt.*line 2"):
        (tmp_path / "Toy.txt").write_text("1 5\n1 x\n")
        read_sasrec(path)


def test_amazon_games_by_name_against_the_file():
    from conftest import real_data_dir

    from jaxrec.data import load_dataset

    root = real_data_dir("amazon-games/Video.txt")
    raw = np.loadtxt(root / "amazon-games" / "Video.txt", dtype=np.int64)
    inter = load_dataset("amazon-games", data_dir=root)
    assert (inter.n_users, inter.n_items, len(inter)) == (31013, 23715, 287107)
    split = load_split(DataConfig(dataset="amazon-games", split="leave_one_out"), sequential=True)
    counts = np.unique(raw[:, 0], return_counts=True)[1]
    assert split.info["order"] == "file" and split.info["rule"] == "sasrec"  # auto for this data set
    assert split.info["users_with_test"] == int((counts >= 3).sum()) == len(split.test)
    # the test item is each user's last line of the file
    last = {}
    for u, i in raw:
        last[u] = i
    test = {int(inter.user_ids[u]): int(inter.item_ids[i]) for u, i in zip(split.test.users, split.test.items)}
    assert all(last[u] == i for u, i in test.items())


def test_a_changed_named_file_fails_its_checksum(tmp_path):
    from conftest import real_data_dir

    from jaxrec.data import load_dataset

    root = real_data_dir("amazon-games/Video.txt")
    (tmp_path / "amazon-games").mkdir()
    text = (root / "amazon-games" / "Video.txt").read_text()
    (tmp_path / "amazon-games" / "Video.txt").write_text(text.replace("1 6393\n", "1 6394\n", 1))
    with pytest.raises(JaxrecError, match="Video.txt: sha256 .* does not match the pinned"):
        load_dataset("amazon-games", data_dir=tmp_path)
