"""Generic tables' columns: conventionally named ones (``rating``, ``timestamp``) are read and
validated without a setting, every unused column is one warning line, and a file separated by
something else than its extension says gets a hint naming ``data.delimiter``."""

from __future__ import annotations

import numpy as np
import pytest

from jaxrec.cli import main
from jaxrec.data import read_ml100k, read_parquet, read_split_files, read_table
from jaxrec.errors import JaxrecError


def write(path, text):
    path.write_text(text)
    return path


def error(fn) -> str:
    with pytest.raises(JaxrecError) as e:
        fn()
    return str(e.value)


def warnings_of(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]


# --------------------------------------------------------------------------------------------
# conventional columns: read, validated, named in errors
# --------------------------------------------------------------------------------------------
def test_rating_and_timestamp_columns_are_read_by_their_names(tmp_path, capsys):
    p = write(tmp_path / "x.csv", "user_id,item_id,rating,timestamp\n1,10,4,100\n2,11,3.5,101\n")
    inter = read_table(p)
    np.testing.assert_allclose(inter.ratings, [4, 3.5])
    np.testing.assert_array_equal(inter.timestamps, [100, 101])
    assert warnings_of(capsys) == []  # every column is used


def test_a_bad_rating_in_a_conventional_column_names_file_line_and_value(tmp_path):
    p = write(tmp_path / "x.csv", "user_id,item_id,rating,timestamp\n1,10,4,100\n1,11,five,101\n2,10,3,102\n")
    msg = error(lambda: read_table(p))
    assert msg.startswith(f"{p}, line 3, column 'rating': rating 'five' is not a number"), msg
    assert 'data.rating_col: "" (jaxrec data info --rating-col "")' in msg, msg  # how to ignore the column


@pytest.mark.parametrize("bad, why", [("soon", "not a number"), ("nan", "not a number")])
def test_a_bad_timestamp_in_a_conventional_column_names_file_line_and_value(tmp_path, bad, why):
    p = write(tmp_path / "x.csv", f"user_id,item_id,timestamp\n1,10,100\n1,11,{bad}\n")
    msg = error(lambda: read_table(p))
    assert msg.startswith(f"{p}, line 3, column 'timestamp': timestamp {bad!r} is {why}"), msg


def test_a_non_finite_rating_in_a_conventional_column(tmp_path):
    p = write(tmp_path / "x.csv", "user_id,item_id,rating\n1,10,inf\n")
    assert f"{p}, line 2, column 'rating': rating 'inf' is not finite" in error(lambda: read_table(p))


def test_an_explicit_column_wins_and_the_conventional_one_is_reported(tmp_path, capsys):
    p = write(tmp_path / "x.csv", "user_id,item_id,rating,score\n1,10,bad,4\n2,11,worse,2\n")
    inter = read_table(p, rating_col="score")
    np.testing.assert_allclose(inter.ratings, [4, 2])
    assert inter.timestamps is None
    (line,) = warnings_of(capsys)
    assert line.startswith(f"warning: {p}: column 'rating' not used"), line
    assert "rating 'score'" in line and "data.time_col" in line and "data.rating_col" not in line, line


def test_an_empty_setting_reads_no_such_column_and_is_not_reported(tmp_path, capsys):
    p = write(tmp_path / "x.csv", "user_id,item_id,rating,timestamp\n1,10,five,100\n2,11,,101\n")
    inter = read_table(p, rating_col="")
    assert inter.ratings is None
    np.testing.assert_array_equal(inter.timestamps, [100, 101])
    assert warnings_of(capsys) == []
    inter = read_table(p, rating_col="", time_col="")
    assert inter.ratings is None and inter.timestamps is None


def test_a_conventional_name_already_given_to_another_role_is_not_read_twice(tmp_path):
    p = write(tmp_path / "x.csv", "user,rating,timestamp\n1,10,5\n2,11,6\n")
    inter = read_table(p, user_col="user", item_col="rating")
    assert inter.ratings is None
    np.testing.assert_array_equal(inter.item_ids, [10, 11])
    np.testing.assert_array_equal(inter.timestamps, [5, 6])


def test_a_header_less_file_uses_the_conventional_names_of_its_column_order(tmp_path):
    p = write(tmp_path / "u1.base", "1\t10\t4\t5\n2\t11\t3\t6\n")
    inter = read_table(p, columns=["user_id", "item_id", "rating", "timestamp"])
    np.testing.assert_allclose(inter.ratings, [4, 3])
    np.testing.assert_array_equal(inter.timestamps, [5, 6])


# --------------------------------------------------------------------------------------------
# unused columns: one warning line naming the file and the columns
# --------------------------------------------------------------------------------------------
def test_unused_columns_are_one_warning_line(tmp_path, capsys):
    p = write(tmp_path / "x.csv", 'user_id,item_id,stars,comment\n1,10,4,"hi, there"\n2,11,3,ok\n')
    inter = read_table(p)
    assert inter.ratings is None and len(inter) == 2
    (line,) = warnings_of(capsys)
    assert line.startswith(f"warning: {p}: columns 'stars', 'comment' not used"), line
    assert "data.rating_col / data.time_col" in line and "(jaxrec data info --rating-col / --time-col)" in line, line
    read_table(p)
    assert warnings_of(capsys) == []  # once per file and columns


def test_a_failed_read_does_not_warn(tmp_path, capsys):
    p = write(tmp_path / "x.csv", "user_id,item_id,comment\n1,10,a\n2\n")
    error(lambda: read_table(p))
    assert warnings_of(capsys) == []


def test_split_files_read_a_conventional_column_only_when_every_file_has_it(tmp_path, capsys):
    tr = write(tmp_path / "train.csv", "user_id,item_id,rating,timestamp\n1,10,4,1\n2,11,3,2\n")
    te = write(tmp_path / "test.csv", "user_id,item_id,timestamp\n1,11,3\n")
    s = read_split_files(tr, te)
    assert s.train.ratings is None and s.test.ratings is None
    np.testing.assert_array_equal(s.train.timestamps, [1, 2])
    np.testing.assert_array_equal(s.test.timestamps, [3])
    (line,) = warnings_of(capsys)
    assert line.startswith(f"warning: {tr}: column 'rating' not used"), line


def test_split_files_validate_a_conventional_column(tmp_path):
    tr = write(tmp_path / "train.csv", "user_id,item_id,rating\n1,10,4\n")
    te = write(tmp_path / "test.csv", "user_id,item_id,rating\n1,11,x\n")
    assert f"{te}, line 2, column 'rating': rating 'x' is not a number" in error(lambda: read_split_files(tr, te))


def test_the_experiment_reads_timestamps_without_a_setting(tmp_path):
    """``data.time_col`` unset: a ``timestamp`` column orders the temporal split."""
    from jaxrec.config import DataConfig
    from jaxrec.experiment.data import load_split

    rows = "".join(f"{u},{i},{t}\n" for u in range(3) for t, i in enumerate([5, 4, 3, 2, 1]))
    p = write(tmp_path / "x.csv", "user_id,item_id,timestamp\n" + rows)
    split = load_split(DataConfig(dataset=str(p), split="temporal", ratios=(0.6, 0.2, 0.2)))
    assert sorted(split.test.item_ids[split.test.items].tolist()) == [1, 1, 1]  # the latest item


# --------------------------------------------------------------------------------------------
# Parquet
# --------------------------------------------------------------------------------------------
def test_parquet_conventional_and_unused_columns(tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    p = tmp_path / "x.parquet"
    cols = {"user_id": [1, 2], "item_id": [3, 4], "rating": [4.0, 2.5], "timestamp": [7, 8], "note": ["a", "b"]}
    pq.write_table(pa.table(cols), p)
    inter = read_table(p)
    np.testing.assert_allclose(inter.ratings, [4, 2.5])
    np.testing.assert_array_equal(inter.timestamps, [7, 8])
    (line,) = warnings_of(capsys)
    assert line.startswith(f"warning: {p}: column 'note' not used"), line
    assert read_parquet(p, rating_col="").ratings is None


def test_parquet_text_ratings_are_numbers_or_an_error_naming_row_and_value(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    p = tmp_path / "x.parquet"
    pq.write_table(pa.table({"user_id": [1, 2, 3], "item_id": [3, 4, 5], "rating": ["4", "five", "3"]}), p)
    msg = error(lambda: read_table(p))
    assert msg.startswith(f"{p}, column 'rating', row 2: rating 'five' is not a number"), msg
    assert 'data.rating_col: ""' in msg
    q = tmp_path / "y.parquet"
    pq.write_table(
        pa.table({"user_id": [1, 2], "item_id": [3, 4], "rating": ["4", " 2.5"], "timestamp": ["7", "8"]}), q
    )
    inter = read_table(q)
    np.testing.assert_allclose(inter.ratings, [4, 2.5])
    np.testing.assert_array_equal(inter.timestamps, [7, 8])


# --------------------------------------------------------------------------------------------
# the wrong delimiter: a hint naming data.delimiter and --delimiter
# --------------------------------------------------------------------------------------------
def _tab_hint(msg: str) -> None:
    assert "looks tab-separated" in msg and 'data.delimiter: "\\t"' in msg and "--delimiter $'\\t'" in msg, msg


def test_a_tab_separated_csv_header_says_so(tmp_path):
    p = write(tmp_path / "x.csv", "user_id\titem_id\trating\n1\t10\t4\n")
    msg = error(lambda: read_table(p))
    assert msg.startswith(f"{p}, line 1: the header 'user_id\\titem_id\\trating' has no ','"), msg
    _tab_hint(msg)
    assert len(read_table(p, delimiter="\t")) == 1


def test_tab_separated_rows_say_so(tmp_path):
    p = write(tmp_path / "x.csv", "user_id,item_id\n1\t10\n2\t11\n")
    msg = error(lambda: read_table(p))
    assert msg.startswith(f"{p}, line 2: expected 2 fields separated by ',', found 1"), msg
    _tab_hint(msg)
    q = write(tmp_path / "y.csv", "1\t10\t4\t5\n2\t11\t3\t6\n")
    msg = error(lambda: read_table(q, columns=["user_id", "item_id", "rating", "timestamp"]))
    assert msg.startswith(f"{q}, line 1: expected 4 fields"), msg
    _tab_hint(msg)


def test_a_semicolon_separated_csv_says_so(tmp_path):
    p = write(tmp_path / "x.csv", "user_id;item_id\n1;10\n")
    msg = error(lambda: read_table(p))
    assert "looks semicolon-separated" in msg and 'data.delimiter: ";"' in msg and "--delimiter ';'" in msg, msg


def test_no_delimiter_hint_where_none_fits(tmp_path):
    p = write(tmp_path / "x.csv", "user_id,item_id\n1,10\n3\n")
    assert "separated:" not in error(lambda: read_table(p))
    q = write(tmp_path / "y.csv", "uid,iid\n1,10\n")
    assert "looks" not in error(lambda: read_table(q))
    r = write(tmp_path / "u.data", "1,2,3,4\n")  # a fixed format: no delimiter setting to suggest
    assert "data.delimiter" not in error(lambda: read_ml100k(r))


# --------------------------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------------------------
def test_data_info_reports_a_bad_rating_in_one_line(tmp_path, capsys):
    p = write(tmp_path / "x.csv", "user_id,item_id,rating,timestamp\n1,10,4,100\n1,11,five,101\n")
    assert main(["data", "info", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {p}, line 3, column 'rating': rating 'five'"), err
    assert len(err.strip().splitlines()) == 1
    assert main(["data", "info", str(p), "--rating-col", ""]) == 0
    assert capsys.readouterr().err == ""


def test_data_info_warns_of_unused_columns_and_hints_the_delimiter(tmp_path, capsys):
    p = write(tmp_path / "x.csv", "user_id,item_id,rating,when\n1,10,4,100\n2,11,3,101\n")
    assert main(["data", "info", str(p)]) == 0
    out, err = capsys.readouterr()
    assert (
        err == f"warning: {p}: column 'when' not used (read: user id 'user_id', item id 'item_id', rating 'rating'); "
        "to read one as the timestamps, set data.time_col (jaxrec data info --time-col)\n"
    )
    assert "ratings" in out
    assert main(["data", "info", str(p), "--time-col", "when"]) == 0
    assert "timestamps" in capsys.readouterr().out
    q = write(tmp_path / "tabs.csv", "user_id\titem_id\n1\t10\n")
    assert main(["data", "info", str(q)]) == 2
    _tab_hint(capsys.readouterr().err)
    assert main(["data", "info", str(q), "--delimiter", "\t"]) == 0
