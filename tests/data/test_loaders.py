"""Readers: formats, id remapping, and one test per kind of bad input (file + line named)."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from jaxrec.data import (
    Split,
    read_csv,
    read_lightgcn,
    read_ml100k,
    read_movielens,
    read_movielens_csv,
    read_movielens_dat,
    read_parquet,
    read_split_files,
    read_table,
)
from jaxrec.errors import JaxrecError


def write(path, text):
    path.write_text(text)
    return path


def raises_at(fn, path, line=None, column=None, match=None):
    """Call ``fn``; it must raise JaxrecError naming ``path`` (and line / column)."""
    with pytest.raises(JaxrecError) as e:
        fn()
    msg = str(e.value)
    assert str(path) in msg, msg
    if line is not None:
        assert f"line {line}" in msg, msg
    if column is not None:
        assert repr(column) in msg, msg
    if match is not None:
        assert re.search(match, msg), msg
    return msg


# --------------------------------------------------------------------------------------------
# MovieLens
# --------------------------------------------------------------------------------------------
UDATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n196\t377\t5\t881250950\n"


def test_ml100k_reads_and_remaps_sorted(tmp_path):
    p = write(tmp_path / "u.data", UDATA)
    inter = read_ml100k(p)
    assert (inter.n_users, inter.n_items, len(inter)) == (3, 3, 4)
    np.testing.assert_array_equal(inter.user_ids, [22, 186, 196])
    np.testing.assert_array_equal(inter.item_ids, [242, 302, 377])
    np.testing.assert_array_equal(inter.user_ids[inter.users], [196, 186, 22, 196])
    np.testing.assert_array_equal(inter.item_ids[inter.items], [242, 302, 377, 377])
    np.testing.assert_array_equal(inter.ratings, [3, 3, 1, 5])
    assert inter.ratings.dtype == np.float32 and inter.timestamps.dtype == np.int64
    assert inter.timestamps[0] == 881250949
    assert inter.users.dtype == np.int32
    # a directory holding u.data works too
    assert len(read_ml100k(tmp_path)) == 4
    assert inter.source == str(p)


def test_ratings_dat(tmp_path):
    p = write(tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::3.5::978302109\n2::1193::4::978298413\n")
    inter = read_movielens_dat(p)
    assert (inter.n_users, inter.n_items, len(inter)) == (2, 2, 3)
    np.testing.assert_allclose(inter.ratings, [5, 3.5, 4])
    np.testing.assert_array_equal(inter.item_ids, [661, 1193])
    assert len(read_movielens(tmp_path)) == 3


def test_ratings_csv(tmp_path):
    p = write(
        tmp_path / "ratings.csv",
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.0,964981247\n6,3,0.5,964982224\n",
    )
    inter = read_movielens_csv(p)
    assert (inter.n_users, inter.n_items, len(inter)) == (2, 2, 3)
    np.testing.assert_allclose(inter.ratings, [4, 4, 0.5])
    np.testing.assert_array_equal(inter.user_ids, [1, 6])
    assert len(read_movielens(p)) == 3


def test_crlf_and_trailing_blank_lines(tmp_path):
    p = tmp_path / "u.data"
    p.write_bytes(UDATA.replace("\n", "\r\n").encode() + b"\r\n\r\n")
    assert len(read_ml100k(p)) == 4


# --------------------------------------------------------------------------------------------
# LightGCN
# --------------------------------------------------------------------------------------------
def test_lightgcn_keeps_ids(tmp_path):
    write(tmp_path / "train.txt", "0 0 1 2\n1 3\n2\n3 1 4\n")
    write(tmp_path / "test.txt", "0 5\n1 0 1\n3 7\n")
    s = read_lightgcn(tmp_path)
    assert isinstance(s, Split) and s.valid is None
    assert (s.n_users, s.n_items) == (4, 8)  # user 2 has no items; item 7 only in test
    np.testing.assert_array_equal(s.train.users, [0, 0, 0, 1, 3, 3])
    np.testing.assert_array_equal(s.train.items, [0, 1, 2, 3, 1, 4])
    np.testing.assert_array_equal(s.test.users, [0, 1, 1, 3])
    np.testing.assert_array_equal(s.test.items, [5, 0, 1, 7])
    np.testing.assert_array_equal(s.train.user_ids, np.arange(4))
    assert s.info["users_with_test"] == 3
    assert s.info["users"] == 3  # user 2 has a line but no rows
    assert s.info["train"] == 6 and s.info["test"] == 4


def test_lightgcn_spacing(tmp_path):
    write(tmp_path / "train.txt", "  0   12 2\t3  \r\n\n")
    write(tmp_path / "test.txt", "0 4")  # no trailing newline
    s = read_lightgcn(tmp_path)
    assert (s.n_users, s.n_items) == (1, 13)
    np.testing.assert_array_equal(s.train.items, [12, 2, 3])
    np.testing.assert_array_equal(s.test.items, [4])


@pytest.mark.parametrize("big", ["2147483647", "12345678901234567890123"])
def test_lightgcn_too_large_id(tmp_path, big):
    write(tmp_path / "train.txt", f"0 1\n1 {big} 2\n")
    write(tmp_path / "test.txt", "0 4\n")
    raises_at(lambda: read_lightgcn(tmp_path), tmp_path / "train.txt", line=2, match="too large")


def test_lightgcn_bad_token(tmp_path):
    write(tmp_path / "train.txt", "0 1 2\n1 2 x3\n")
    write(tmp_path / "test.txt", "0 3\n")
    raises_at(lambda: read_lightgcn(tmp_path), tmp_path / "train.txt", line=2)


def test_lightgcn_negative_id(tmp_path):
    write(tmp_path / "train.txt", "0 1 2\n")
    write(tmp_path / "test.txt", "0 3\n1 4\n2 -5\n")
    raises_at(lambda: read_lightgcn(tmp_path), tmp_path / "test.txt", line=3)


def test_lightgcn_empty_and_missing(tmp_path):
    write(tmp_path / "train.txt", "0 1\n")
    write(tmp_path / "test.txt", "\n  \n")
    raises_at(lambda: read_lightgcn(tmp_path), tmp_path / "test.txt", match="empty")
    (tmp_path / "test.txt").unlink()
    raises_at(lambda: read_lightgcn(tmp_path), tmp_path / "test.txt", match="no such file")


# --------------------------------------------------------------------------------------------
# generic tables
# --------------------------------------------------------------------------------------------
def test_csv_string_ids_and_extra_columns(tmp_path):
    p = write(
        tmp_path / "x.csv", 'uid,iid,score,when,comment\nbob,i9,1.5,10,"hi, there"\nalice,i1,2,11,x\nbob,i1,3,12,y\n'
    )
    inter = read_table(p, user_col="uid", item_col="iid", rating_col="score", time_col="when")
    np.testing.assert_array_equal(inter.user_ids, ["alice", "bob"])
    np.testing.assert_array_equal(inter.item_ids, ["i1", "i9"])
    np.testing.assert_array_equal(inter.users, [1, 0, 1])
    np.testing.assert_array_equal(inter.items, [1, 0, 0])
    np.testing.assert_allclose(inter.ratings, [1.5, 2, 3])
    np.testing.assert_array_equal(inter.timestamps, [10, 11, 12])
    assert inter.user_index["bob"] == 1


def test_csv_numeric_ids_fast_path(tmp_path):
    p = write(tmp_path / "x.csv", "item_id,user_id,x\n10,7,0.1\n3,7,0.2\n10,1,0.3\n")
    inter = read_csv(p)
    assert inter.user_ids.dtype == np.int64
    np.testing.assert_array_equal(inter.user_ids, [1, 7])
    np.testing.assert_array_equal(inter.item_ids, [3, 10])
    assert inter.ratings is None and inter.timestamps is None


def test_id_dtype_str_keeps_leading_zeros(tmp_path):
    p = write(tmp_path / "x.csv", "user_id,item_id\n007,1\n7,2\n")
    assert read_table(p).n_users == 1  # auto: both are the integer 7
    inter = read_table(p, id_dtype="str")
    np.testing.assert_array_equal(inter.user_ids, ["007", "7"])
    with pytest.raises(JaxrecError):
        read_table(p, id_dtype="float")


def test_tsv_by_extension_and_explicit_delimiter(tmp_path):
    p = write(tmp_path / "x.tsv", "user_id\titem_id\n1\t2\n3\t4\n")
    assert len(read_table(p)) == 2
    q = write(tmp_path / "x.data", "user_id;item_id;r\n1;2;5\n3;4;1\n")
    inter = read_table(q, delimiter=";", rating_col="r")
    np.testing.assert_allclose(inter.ratings, [5, 1])


def test_split_files_share_one_id_space(tmp_path):
    tr = write(tmp_path / "train.csv", "user_id,item_id\na,x\nb,y\na,y\n")
    te = write(tmp_path / "test.csv", "user_id,item_id\na,z\nc,x\n")
    va = write(tmp_path / "valid.csv", "user_id,item_id\nb,x\n")
    s = read_split_files(tr, te, va)
    assert (s.n_users, s.n_items) == (3, 3)
    for part in (s.train, s.valid, s.test):
        np.testing.assert_array_equal(part.user_ids, ["a", "b", "c"])
        np.testing.assert_array_equal(part.item_ids, ["x", "y", "z"])
    # ids only in test still get indices
    assert s.test.user_ids[s.test.users[1]] == "c" and s.test.item_ids[s.test.items[0]] == "z"
    assert s.info["users_cold"] == 1 and s.info["items_cold"] == 1
    assert s.info["users_with_test"] == 2 and s.info["users_with_valid"] == 1


def test_split_files_int_and_str_mixture(tmp_path):
    tr = write(tmp_path / "train.csv", "user_id,item_id\n1,1\n2,2\n")
    te = write(tmp_path / "test.csv", "user_id,item_id\n1,x\n")
    s = read_split_files(tr, te)
    assert s.valid is None
    np.testing.assert_array_equal(s.train.item_ids, ["1", "2", "x"])
    np.testing.assert_array_equal(s.train.user_ids, ["1", "2"])


def test_parquet_roundtrip(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    p = tmp_path / "x.parquet"
    pq.write_table(pa.table({"u": ["b", "a", "b"], "i": [5, 3, 3], "r": [1.0, 2.0, 3.5], "t": [3, 2, 1]}), p)
    inter = read_table(p, user_col="u", item_col="i", rating_col="r", time_col="t")
    np.testing.assert_array_equal(inter.user_ids, ["a", "b"])
    np.testing.assert_array_equal(inter.item_ids, [3, 5])
    np.testing.assert_array_equal(inter.users, [1, 0, 1])
    np.testing.assert_allclose(inter.ratings, [1, 2, 3.5])
    np.testing.assert_array_equal(inter.timestamps, [3, 2, 1])
    assert len(read_parquet(p, user_col="u", item_col="i")) == 3
    raises_at(lambda: read_table(p, user_col="user", item_col="i"), p, column="user", match="missing")
    q = tmp_path / "nan.parquet"
    pq.write_table(pa.table({"user_id": [1, 2], "item_id": [1, 2], "rating": [1.0, float("nan")]}), q)
    raises_at(lambda: read_table(q, rating_col="rating"), q, column="rating", match="row 2")
    q2 = tmp_path / "null.parquet"
    pq.write_table(pa.table({"user_id": [1, None], "item_id": [1, 2]}), q2)
    raises_at(lambda: read_table(q2), q2, column="user_id", match="row 2")


def test_parquet_without_pyarrow_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    p = tmp_path / "x.parquet"
    p.write_bytes(b"PAR1")
    raises_at(lambda: read_table(p), p, match="pyarrow")


# --------------------------------------------------------------------------------------------
# bad input: one test per case, each naming the file and the 1-based line
# --------------------------------------------------------------------------------------------
def test_wrong_field_count(tmp_path):
    p = write(tmp_path / "u.data", "1\t2\t3\t4\n1\t3\t3\t4\n5\t6\t3\n")
    raises_at(lambda: read_ml100k(p), p, line=3, match="expected 4 fields")


def test_too_many_fields_in_csv(tmp_path):
    p = write(tmp_path / "x.csv", "user_id,item_id,rating\n1,2,3\n1,2,3,4\n")
    raises_at(lambda: read_table(p, rating_col="rating"), p, line=3, match="found 4")


def test_wrong_field_count_in_string_csv(tmp_path):
    p = write(tmp_path / "x.csv", 'user_id,item_id\na,"b,c"\nd\n')
    raises_at(lambda: read_table(p), p, line=3, match="expected 2 fields")


def test_non_numeric_user_id(tmp_path):
    p = write(tmp_path / "u.data", "1\t2\t3\t4\nabc\t3\t3\t4\n")
    raises_at(lambda: read_ml100k(p), p, line=2, column="user", match="'abc' is not an integer")


def test_non_numeric_item_id_dat(tmp_path):
    p = write(tmp_path / "ratings.dat", "1::2::3::4\n1::3::3::4\n1::4.5::3::4\n")
    raises_at(lambda: read_movielens_dat(p), p, line=3, column="item")


def test_non_numeric_id_in_movielens_csv(tmp_path):
    p = write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,2,3,4\nx,2,3,4\n")
    raises_at(lambda: read_movielens_csv(p), p, line=3, column="userId")


def test_int_ids_required(tmp_path):
    p = write(tmp_path / "x.csv", "user_id,item_id\n1,2\n2,b\n")
    raises_at(lambda: read_table(p, id_dtype="int"), p, line=3, column="item_id")


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_rating(tmp_path, bad):
    p = write(tmp_path / "x.csv", f"user_id,item_id,rating\n1,2,3\n1,3,4\n2,2,{bad}\n")
    raises_at(lambda: read_table(p, rating_col="rating"), p, line=4, column="rating", match="not finite")


def test_non_finite_rating_ml100k(tmp_path):
    p = write(tmp_path / "u.data", "1\t2\tnan\t4\n")
    raises_at(lambda: read_ml100k(p), p, line=1, column="rating")


def test_non_numeric_rating(tmp_path):
    p = write(tmp_path / "x.csv", "user_id,item_id,rating\n1,2,3\n1,3,good\n")
    raises_at(lambda: read_table(p, rating_col="rating"), p, line=3, column="rating", match="not a number")


def test_non_numeric_timestamp(tmp_path):
    p = write(tmp_path / "x.csv", "user_id,item_id,t\n1,2,3\n1,3,yesterday\n")
    raises_at(lambda: read_table(p, time_col="t"), p, line=3, column="t", match="timestamp")


@pytest.mark.parametrize("content", ["", "\n\n", "   \n"])
def test_empty_file(tmp_path, content):
    p = write(tmp_path / "u.data", content)
    raises_at(lambda: read_ml100k(p), p, match="empty")
    q = write(tmp_path / "x.csv", content)
    raises_at(lambda: read_table(q), q, match="empty")


def test_header_only(tmp_path):
    p = write(tmp_path / "x.csv", "user_id,item_id\n")
    raises_at(lambda: read_table(p), p, match="no data rows")


def test_duplicate_column(tmp_path):
    p = write(tmp_path / "x.csv", "user_id,item_id,user_id\n1,2,3\n")
    raises_at(lambda: read_table(p), p, line=1, column="user_id", match="duplicate")


def test_missing_column(tmp_path):
    p = write(tmp_path / "x.csv", "user_id,item_id\n1,2\n")
    raises_at(lambda: read_table(p, rating_col="stars"), p, line=1, column="stars", match="missing")
    raises_at(lambda: read_table(p, user_col="uid"), p, line=1, column="uid", match="missing")


def test_blank_header(tmp_path):
    p = write(tmp_path / "x.csv", "\nuser,item\n1,2\n")
    raises_at(lambda: read_table(p), p, line=1, match="header")


def test_same_column_for_two_roles(tmp_path):
    p = write(tmp_path / "x.csv", "user_id,item_id\n1,2\n")
    with pytest.raises(JaxrecError, match="two roles"):
        read_table(p, rating_col="item_id")


def test_missing_file(tmp_path):
    raises_at(lambda: read_ml100k(tmp_path / "nope.data"), tmp_path / "nope.data", match="no such file")


def test_not_utf8(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b"user_id,item_id\n1,2\n\xff\xfe,3\n")
    raises_at(lambda: read_table(p), p, line=3, match="UTF-8")


def test_empty_id(tmp_path):
    p = write(tmp_path / "x.csv", "user_id,item_id\n1,2\n,3\n")
    raises_at(lambda: read_table(p), p, line=3, column="user_id", match="empty")


@pytest.mark.parametrize(
    "name, text, message",
    [
        (
            "u.data",
            "1\t5\t3\t881250949\n\n0\t5\t4\t881250950\n",
            r"u.data, line 3, column 'user': user id 0 is outside \[1, ",
        ),
        (
            "ratings.dat",
            "1::5::3::1\n2::-4::4::2\n",
            r"ratings.dat, line 2, column 'item': item id -4 is outside \[1, ",
        ),
        (
            "ratings.csv",
            "userId,movieId,rating,timestamp\n1,5,3,1\n2,99999999999,4,2\n",
            r"ratings.csv, line 3, column 'movieId': item id 99999999999 is outside \[1, 2147483648\)",
        ),
    ],
)
def test_movielens_ids_that_are_not_positive_integers_are_malformed_lines(tmp_path, name, text, message):
    from jaxrec.data import load_dataset

    (tmp_path / name).write_text(text)
    with pytest.raises(JaxrecError, match=message):
        load_dataset(tmp_path / name)


def test_header_less_files_read_with_the_column_order(tmp_path):
    """GroupLens' own u1.base / u1.test: tab-separated, no header."""
    from jaxrec.config import DataConfig
    from jaxrec.experiment.data import load_split

    base, test = tmp_path / "u1.base", tmp_path / "u1.test"
    base.write_text("1\t10\t4\t5\n1\t11\t3\t6\n2\t10\t5\t7\n2\t12\t1\t8\n")
    test.write_text("1\t12\t2\t9\n2\t11\t4\t10\n")
    with pytest.raises(
        JaxrecError,
        match=r"missing user column 'user_id' in the header; the columns are \['1', '10', "
        r"'4', '5'\] \(a file without a header row\? give the column names in order\)",
    ):
        read_table(base)
    inter = read_table(base, columns=["user_id", "item_id", "rating", "timestamp"], rating_col="rating")
    assert (inter.n_users, inter.n_items, len(inter)) == (2, 3, 4)
    np.testing.assert_array_equal(inter.ratings, [4, 3, 5, 1])
    assert inter.item_ids.tolist() == [10, 11, 12]
    cfg = DataConfig(
        dataset=str(base),
        test_path=str(test),
        split="predefined",
        rating_col="rating",
        columns=("user_id", "item_id", "rating", "timestamp"),
    )
    split = load_split(cfg)
    assert (len(split.train), len(split.test)) == (4, 2) and split.test.item_ids[split.test.items].tolist() == [12, 11]
