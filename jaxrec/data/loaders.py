"""Readers that turn user-behaviour files into :class:`Interactions` (or a :class:`Split`).

Formats:

* MovieLens 100K ``u.data``: ``user \\t item \\t rating \\t timestamp``, no header
  (:func:`read_ml100k`).
* MovieLens 1M / 10M ``ratings.dat``: ``user::item::rating::timestamp`` (:func:`read_movielens_dat`).
* MovieLens 20M / 25M / latest(-small) ``ratings.csv``: header ``userId,movieId,rating,timestamp``
  (:func:`read_movielens_csv`).
* LightGCN text splits: a directory with ``train.txt`` / ``test.txt``, one line per user,
  ``user item item ...`` (:func:`read_lightgcn`, returns a :class:`Split`).
* Generic CSV / TSV with a header row and named columns, and Parquet when ``pyarrow`` is installed
  (:func:`read_table`); a predefined train / test (/ valid) pair of such files (:func:`read_split_files`).

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
    _ROLE_WORD,
    PathLike,
    _check_file,
    _interactions,
    _parse_delimited,
    _remap,
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


def read_ml100k(path: PathLike) -> Interactions:
    """MovieLens 100K ``u.data`` (or a directory holding it): tab-separated
    ``user item rating timestamp``, no header.

    Returns Interactions with ``ratings [N]`` float32 and ``timestamps [N]`` int64; the real file
    gives 943 users, 1,682 items, 100,000 rows (index = raw id - 1).
    """
    path = _in_dir(path, "u.data")
    cols = _parse_delimited(
        path,
        delimiter="\t",
        header=False,
        names=_ML_NAMES,
        fields=_ML_FIELDS,
        id_dtype="int",
        quoted=False,
        id_range=ML_ID_RANGE,
    )
    return _interactions(cols, str(path))


def read_movielens_dat(path: PathLike) -> Interactions:
    """MovieLens 1M / 10M ``ratings.dat`` (or a directory holding it):
    ``user::item::rating::timestamp``, no header."""
    path = _in_dir(path, "ratings.dat")
    cols = _parse_delimited(
        path,
        delimiter="::",
        header=False,
        names=_ML_NAMES,
        fields=_ML_FIELDS,
        id_dtype="int",
        quoted=False,
        id_range=ML_ID_RANGE,
    )
    return _interactions(cols, str(path))


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
# generic tables: CSV / TSV / Parquet
# ------------------------------------------------------------------------------------------------
_DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": "\t", ".dat": "::"}


def _sniff_delimiter(path: Path) -> str:
    """A file of unknown extension (e.g. MovieLens' ``u1.base``): tab when its first line has
    a tab, else ``::`` or ``,`` likewise, else ``,``."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            first = next((line for line in f if line.strip()), "")
    except (OSError, UnicodeDecodeError):
        return ","
    return next((d for d in ("\t", "::", ",") if d in first), ",")


def _fields(user_col, item_col, rating_col, time_col) -> dict[str, str]:
    fields = {"user": user_col, "item": item_col}
    if rating_col is not None:
        fields["rating"] = rating_col
    if time_col is not None:
        fields["time"] = time_col
    cols = list(fields.values())
    dup = {c for c in cols if cols.count(c) > 1}
    if dup:
        raise JaxrecError(f"the same column is given for two roles: {sorted(dup)}")
    return fields


def _check_id_dtype(id_dtype):
    if id_dtype not in (None, "int", "str"):
        raise JaxrecError(f"id_dtype must be None, 'int' or 'str', got {id_dtype!r}")


def _read_columns(
    path: PathLike,
    fields: dict[str, str],
    delimiter: str | None,
    id_dtype: str | None,
    columns: Sequence[str] = (),
) -> dict[str, np.ndarray]:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        if columns:
            raise JaxrecError(f"{path}: a Parquet file names its columns itself; give no column order")
        return _parquet_columns(path, fields, id_dtype)
    if delimiter is None:
        delimiter = _DELIMITERS.get(suffix) or _sniff_delimiter(path)
    if not delimiter:
        raise JaxrecError(f"{path}: the delimiter must not be empty")
    if columns and len(set(columns)) != len(columns):
        raise JaxrecError(f"{path}: the column order names a column twice: {list(columns)}")
    return _parse_delimited(
        path,
        delimiter=delimiter,
        header=not columns,
        names=list(columns) or None,
        fields=fields,
        id_dtype=id_dtype,
        quoted=len(delimiter) == 1,
    )


def read_table(
    path: PathLike,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    rating_col: str | None = None,
    time_col: str | None = None,
    delimiter: str | None = None,
    id_dtype: str | None = None,
    columns: Sequence[str] = (),
) -> Interactions:
    """A CSV / TSV file with a header row (or without one: ``columns``), or a Parquet file
    (``.parquet`` / ``.pq``, needs pyarrow).

    Args:
      path: the file. Its extension picks the delimiter unless ``delimiter`` is given:
        ``.csv`` → ``,``, ``.tsv`` / ``.tab`` / ``.txt`` → tab, ``.dat`` → ``::``, else ``,``.
        CSV quoting (``"a,b"``) is understood for one-character delimiters.
      user_col, item_col: header names of the id columns (defaults ``user_id`` / ``item_id``,
        as in RecBole and jaxrec.config.DataConfig).
      rating_col, time_col: optional header names of the rating / timestamp columns. Ratings must
        be finite numbers; timestamps integers (floats are truncated).
      id_dtype: ``None`` (a column whose every value is an integer becomes int64 ids, otherwise
        the ids stay strings, e.g. ``"007"`` becomes 7), ``"int"`` (non-integers are errors) or
        ``"str"`` (ids kept exactly as written).
      columns: for a file without a header, the names of its columns in order (e.g.
        ``["user_id", "item_id", "rating", "timestamp"]`` for MovieLens' ``u1.base``); the
        ``*_col`` arguments pick among them.

    Returns Interactions with ids remapped to sorted raw-id order (``user_ids`` / ``item_ids`` hold
    the raw ids). Other columns are ignored but every line must have as many fields as the header.
    """
    _check_id_dtype(id_dtype)
    fields = _fields(user_col, item_col, rating_col, time_col)
    return _interactions(_read_columns(path, fields, delimiter, id_dtype, columns), str(path))


read_csv = read_table


def read_parquet(
    path: PathLike,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    rating_col: str | None = None,
    time_col: str | None = None,
    id_dtype: str | None = None,
) -> Interactions:
    """A Parquet file (needs the optional dependency ``pyarrow``); same columns as :func:`read_table`."""
    _check_id_dtype(id_dtype)
    fields = _fields(user_col, item_col, rating_col, time_col)
    return _interactions(_parquet_columns(Path(path), fields, id_dtype), str(path))


def _parquet_columns(path: Path, fields: dict[str, str], id_dtype) -> dict[str, np.ndarray]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise JaxrecError(
            f"{path}: reading Parquet needs the optional dependency pyarrow "
            "(pip install pyarrow), or convert the file to CSV"
        ) from None
    if not path.is_file():
        raise JaxrecError(f"{path}: no such file")
    try:
        pf = pq.ParquetFile(path)
        names = list(pf.schema_arrow.names)
    except Exception as e:  # pyarrow raises its own error types for broken files
        raise JaxrecError(f"{path}: not a readable Parquet file ({e})") from None
    for n in names:
        if names.count(n) > 1:
            raise JaxrecError(f"{_where(path, None, n)}: duplicate column name")
    for role, col in fields.items():
        if col not in names:
            raise JaxrecError(f"{_where(path, None, col)}: missing {role} column {col!r}; the columns are {names}")
    table = pf.read(columns=list(fields.values()))
    if table.num_rows == 0:
        raise JaxrecError(f"{path}: the file has no rows")
    out = {}
    for role, col in fields.items():
        arr = table.column(col)
        if arr.null_count:
            row = int(np.flatnonzero(np.asarray(arr.is_null().to_numpy(zero_copy_only=False)))[0])
            raise JaxrecError(f"{_where(path, None, col)}, row {row + 1}: missing {_ROLE_WORD[role]}")
        values = np.asarray(arr.to_numpy(zero_copy_only=False))
        out[role] = _parquet_values(path, col, role, values, id_dtype)
    return out


def _parquet_values(path, col, role, values: np.ndarray, id_dtype) -> np.ndarray:
    where = _where(path, None, col)
    numeric = np.issubdtype(values.dtype, np.number) or values.dtype == bool
    if role in ("user", "item"):
        if id_dtype == "str":
            return values.astype(str)
        if np.issubdtype(values.dtype, np.integer):
            return values.astype(np.int64)
        if id_dtype == "int":
            raise JaxrecError(f"{where}: {_ROLE_WORD[role]}s must be integers, got {values.dtype}")
        return values.astype(str)
    if not numeric:
        if role == "time" and np.issubdtype(values.dtype, np.datetime64):
            return values.astype("datetime64[s]").astype(np.int64)
        raise JaxrecError(f"{where}: {_ROLE_WORD[role]}s must be numeric, got {values.dtype}")
    values = values.astype(np.float64 if role == "rating" else values.dtype)
    if np.issubdtype(values.dtype, np.floating) and not np.all(np.isfinite(values)):
        row = int(np.flatnonzero(~np.isfinite(values))[0])
        raise JaxrecError(f"{where}, row {row + 1}: {_ROLE_WORD[role]} {values[row]} is not finite")
    return values if role == "rating" else values.astype(np.int64)


def read_split_files(
    train: PathLike,
    test: PathLike,
    valid: PathLike | None = None,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    rating_col: str | None = None,
    time_col: str | None = None,
    delimiter: str | None = None,
    id_dtype: str | None = None,
    columns: Sequence[str] = (),
) -> Split:
    """A predefined split given as files (CSV / TSV / Parquet, as :func:`read_table`).

    All files share ONE id space: the raw ids of every file together are sorted and numbered, so
    a user or item that appears only in the test (or validation) file still gets an index (it just
    has no training rows; ``info["users_cold"]`` / ``info["items_cold"]`` count them). If one
    file's ids are all integers and another's are not, every file is read again with string ids.
    """
    from jaxrec.data.split import split_info

    _check_id_dtype(id_dtype)
    fields = _fields(user_col, item_col, rating_col, time_col)
    paths = {"train": train, "valid": valid, "test": test}
    paths = {k: Path(p) for k, p in paths.items() if p is not None}
    cols = {k: _read_columns(p, fields, delimiter, id_dtype, columns) for k, p in paths.items()}
    for role in ("user", "item"):
        if len({c[role].dtype.kind for c in cols.values()}) > 1:
            cols = {k: _read_columns(p, fields, delimiter, "str", columns) for k, p in paths.items()}
            break
    maps = {}
    for role in ("user", "item"):
        allraw = np.concatenate([c[role] for c in cols.values()])
        maps[role] = _remap(allraw)
    sizes = np.cumsum([0] + [len(c["user"]) for c in cols.values()])
    parts = {}
    for (k, c), lo, hi in zip(cols.items(), sizes[:-1], sizes[1:]):
        parts[k] = Interactions(
            users=maps["user"][0][lo:hi],
            items=maps["item"][0][lo:hi],
            n_users=len(maps["user"][1]),
            n_items=len(maps["item"][1]),
            ratings=c.get("rating"),
            timestamps=c.get("time"),
            user_ids=maps["user"][1],
            item_ids=maps["item"][1],
            source=str(paths[k]),
        )
    info = split_info(parts["train"], parts.get("valid"), parts["test"])
    train_u, train_i = parts["train"].user_counts() > 0, parts["train"].item_counts() > 0
    info["users_cold"] = int(np.sum(~train_u))
    info["items_cold"] = int(np.sum(~train_i))
    return Split(train=parts["train"], test=parts["test"], valid=parts.get("valid"), info=info)


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
