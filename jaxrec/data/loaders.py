"""Readers that turn user-behaviour files into :class:`Interactions` (or a :class:`Split`).

Formats:

* MovieLens 100K ``u.data``: ``user \\t item \\t rating \\t timestamp``, no header
  (:func:`read_ml100k`).
* MovieLens 1M / 10M ``ratings.dat``: ``user::item::rating::timestamp`` (:func:`read_movielens_dat`).
* MovieLens 20M / 25M / latest(-small) ``ratings.csv``: header ``userId,movieId,rating,timestamp``
  (:func:`read_movielens_csv`).
* LightGCN text splits: a directory with ``train.txt`` / ``test.txt``, one line per user,
  ``user item item ...`` (:func:`read_lightgcn`, returns a :class:`Split`).
* Generic CSV / TSV with a header row and named columns, and Parquet when ``pyarrow`` is installed,
  and predefined train / test (/ valid) sets of such files: :mod:`jaxrec.data.tables`.

Raw ids (ints or strings) are remapped to 0-based contiguous indices in **sorted raw-id order**
(``np.unique``): ``user_ids[u]`` is the raw id of index ``u``, and ``user_ids`` is sorted. For
MovieLens (ids ``1..n``) this means index = raw id - 1. The LightGCN files are already 0-based and
contiguous, so their ids are kept exactly as in the files.

Every problem with the input is a :class:`~jaxrec.errors.JaxrecError` naming the file and the
1-based line number (and the column where it matters). Parsing is vectorised (``np.loadtxt``'s C
parser, or a numpy byte scanner for the LightGCN files); when the fast path refuses a file, a
line-by-line pass finds and reports the first bad line, or reads files the fast path cannot (string
ids, quoted fields); that parser is :mod:`jaxrec.data.delimited`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxrec.data.delimited import (  # the shared delimited-text parser
    PathLike,
    _check_file,
    _interactions,
    _parse_delimited,
    _where,
)
from jaxrec.data.interactions import Interactions, Split
from jaxrec.errors import JaxrecError

# ------------------------------------------------------------------------------------------------
# MovieLens
# ------------------------------------------------------------------------------------------------
_ML_FIELDS = {"user": "user", "item": "item", "rating": "rating", "time": "timestamp"}
_ML_NAMES = ["user", "item", "rating", "timestamp"]


ML_ID_RANGE = (1, 2**31)  #: MovieLens ids are positive integers: 0, negative or larger ids are malformed


def _in_dir(path: PathLike, filename: str) -> Path:
    path = Path(path)
    return path / filename if path.is_dir() else path


def _headerless(path: PathLike, filename: str, delimiter: str) -> Interactions:
    """A header-less MovieLens ratings file ``user<d>item<d>rating<d>timestamp`` (or a directory
    holding ``filename``)."""
    path = _in_dir(path, filename)
    cols = _parse_delimited(
        path,
        delimiter=delimiter,
        header=False,
        names=_ML_NAMES,
        fields=_ML_FIELDS,
        id_dtype="int",
        quoted=False,
        id_range=ML_ID_RANGE,
    )
    return _interactions(cols, str(path))


def read_ml100k(path: PathLike) -> Interactions:
    """MovieLens 100K ``u.data`` (or a directory holding it): tab-separated
    ``user item rating timestamp``, no header.

    Returns Interactions with ``ratings [N]`` float32 and ``timestamps [N]`` int64; the real file
    gives 943 users, 1,682 items, 100,000 rows (index = raw id - 1).
    """
    return _headerless(path, "u.data", "\t")


def read_movielens_dat(path: PathLike) -> Interactions:
    """MovieLens 1M / 10M ``ratings.dat`` (or a directory holding it):
    ``user::item::rating::timestamp``, no header."""
    return _headerless(path, "ratings.dat", "::")


def read_movielens_csv(path: PathLike) -> Interactions:
    """MovieLens 20M / 25M / latest(-small) ``ratings.csv`` (or a directory holding it), header
    ``userId,movieId,rating,timestamp``."""
    path = _in_dir(path, "ratings.csv")
    cols = _parse_delimited(
        path,
        delimiter=",",
        header=True,
        fields={"user": "userId", "item": "movieId", "rating": "rating", "time": "timestamp"},
        id_dtype="int",
        quoted=True,
        id_range=ML_ID_RANGE,
    )
    return _interactions(cols, str(path))


def read_movielens(path: PathLike) -> Interactions:
    """Any MovieLens ratings file, or a directory holding ``u.data``, ``ratings.dat`` or
    ``ratings.csv``; the format follows the file name."""
    path = Path(path)
    if path.is_dir():
        for name, reader in ML_FILES.items():
            if (path / name).is_file():
                return reader(path / name)
        raise JaxrecError(f"{path}: no MovieLens ratings file ({', '.join(ML_FILES)}) here")
    reader = ML_FILES.get(path.name)
    if reader is None:
        raise JaxrecError(f"{path}: not a MovieLens ratings file name ({', '.join(ML_FILES)})")
    return reader(path)


def read_sasrec(path: PathLike) -> Interactions:
    """The SASRec release format (Kang & McAuley, ICDM 2018; ``data/*.txt`` of their code): one
    ``user item`` pair per line, separated by a space, no header, each user's lines in time
    order (the file *is* the order: there are no timestamps). A directory is read through its
    only ``*.txt`` file.

    Returns Interactions without timestamps; sequence models read its rows in file order
    (``order="file"`` of :func:`jaxrec.data.split.event_order`). The Amazon Video Games file
    gives 31,013 users, 23,715 items and 287,107 rows.
    """
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*.txt"))
        if len(found) != 1:
            raise JaxrecError(f"{path}: expected one SASRec-format *.txt file here, found {len(found)}")
        path = found[0]
    cols = _parse_delimited(
        path,
        delimiter=" ",
        header=False,
        names=["user", "item"],
        fields={"user": "user", "item": "item"},
        id_dtype="int",
        quoted=False,
        id_range=ML_ID_RANGE,
    )
    return _interactions(cols, str(path))


#: MovieLens ratings files by name, and their readers
ML_FILES = {"u.data": read_ml100k, "ratings.dat": read_movielens_dat, "ratings.csv": read_movielens_csv}


# ------------------------------------------------------------------------------------------------
# LightGCN text format
# ------------------------------------------------------------------------------------------------
_WS = np.zeros(256, dtype=bool)
_WS[[9, 10, 11, 12, 13, 32]] = True


def _parse_lightgcn_file(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One LightGCN file -> (users ``[N]``, items ``[N]``, line users ``[L]``), all int64.

    Vectorised over bytes: digits form tokens, the first token of a line is the user, the rest
    are that user's items. Any other character is an error naming its line.
    """
    _check_file(path)
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = b"   " + raw[3:]
    a = np.frombuffer(raw, dtype=np.uint8)
    digit = (a >= 48) & (a <= 57)
    bad = ~(digit | _WS[a])
    if bad.any():
        pos = int(np.argmax(bad))
        line = raw.count(b"\n", 0, pos) + 1
        start = raw.rfind(b"\n", 0, pos) + 1
        end = raw.find(b"\n", pos)
        text = raw[start : end if end >= 0 else len(raw)].decode("utf-8", "replace").strip()
        raise JaxrecError(
            f"{_where(path, line)}: ids must be non-negative integers separated by spaces, got {text[:80]!r}"
        )
    dpos = np.flatnonzero(digit)  # byte offsets of digits
    tstart = np.flatnonzero(np.diff(dpos, prepend=-2) != 1)  # token starts, as indices into dpos
    tlen = np.diff(np.append(tstart, dpos.size))
    tlen_ok = np.minimum(tlen, 18)  # longer tokens are reported below, not parsed
    tend = tstart + tlen  # exclusive
    power = np.minimum(np.repeat(tend, tlen) - np.arange(dpos.size) - 1, 18)
    values = np.add.reduceat((a[dpos] - 48).astype(np.int64) * 10**power, tstart)
    too_big = (tlen != tlen_ok) | (values >= 2**31 - 1)
    if too_big.any():
        k = int(np.argmax(too_big))
        line = raw.count(b"\n", 0, int(dpos[tstart[k]])) + 1
        token = raw[dpos[tstart[k]] : dpos[tstart[k]] + tlen[k]].decode()
        raise JaxrecError(f"{_where(path, line)}: id {token} is too large (ids must be < 2^31 - 1)")
    newlines = np.flatnonzero(a == 10)
    line_of = np.searchsorted(newlines, dpos[tstart])  # 0-based line of each token
    first = np.empty(values.size, dtype=bool)
    first[0] = True
    first[1:] = line_of[1:] != line_of[:-1]
    line_users = values[first]
    user_of_token = line_users[np.cumsum(first) - 1]
    return user_of_token[~first], values[~first], line_users


def read_lightgcn(path: PathLike, train: str = "train.txt", test: str = "test.txt") -> Split:
    """A LightGCN / NGCF split directory: ``train.txt`` and ``test.txt``, one line per user,
    ``user item item ...`` separated by spaces (a line may list no items).

    Ids are kept exactly as in the files (they are 0-based and contiguous there); ``n_users`` /
    ``n_items`` are max id + 1 over both files. Returns ``Split(train, test, valid=None)``; the
    real Gowalla files give 29,858 users, 40,981 items, 810,128 train and 217,242 test pairs.
    """
    from jaxrec.data.split import split_info

    path = Path(path)
    if not path.is_dir():
        raise JaxrecError(f"{path}: expected a directory with {train} and {test}")
    parts = {name: _parse_lightgcn_file(path / name) for name in (train, test)}
    n_users = 1 + max(int(max(u.max(initial=-1), lu.max(initial=-1))) for u, _, lu in parts.values())
    n_items = 1 + max(int(i.max(initial=-1)) for _, i, _ in parts.values())
    if n_items <= 0:
        raise JaxrecError(f"{path}: {train} and {test} list no items")
    tr, te = (
        Interactions(users=u, items=i, n_users=n_users, n_items=n_items, source=str(path / name))
        for name, (u, i, _) in parts.items()
    )
    return Split(train=tr, test=te, valid=None, info=split_info(tr, None, te))


# ------------------------------------------------------------------------------------------------
def concat(parts: Sequence[Interactions], source: str | None = None) -> Interactions:
    """Rows of several Interactions over one id space, in order (e.g. a split's parts back
    together). Ratings / timestamps are kept only when every part has them."""
    parts = [p for p in parts if p is not None]
    first = parts[0]
    if len({(p.n_users, p.n_items) for p in parts}) != 1:
        raise JaxrecError("concat: the parts do not share one id space")
    cat = lambda name: (  # noqa: E731
        None if any(getattr(p, name) is None for p in parts) else np.concatenate([getattr(p, name) for p in parts])
    )
    return Interactions(
        users=cat("users"),
        items=cat("items"),
        n_users=first.n_users,
        n_items=first.n_items,
        ratings=cat("ratings"),
        timestamps=cat("timestamps"),
        user_ids=first.user_ids,
        item_ids=first.item_ids,
        source=source or first.source,
    )
