"""Generic tables: CSV / TSV with a header row (or ``columns`` for a header-less file) and named
columns, Parquet when ``pyarrow`` is installed (:func:`read_table`), and a predefined train / test
(/ valid) set of such files in one id space (:func:`read_split_files`).

Raw ids (ints or strings) are remapped to 0-based contiguous indices in sorted raw-id order, as
every reader does (:mod:`jaxrec.data.loaders`); every problem names the file, the 1-based line and
the column (the parser is :mod:`jaxrec.data.delimited`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxrec.data.delimited import (  # the shared delimited-text parser
    _ROLE_WORD,
    PathLike,
    _interactions,
    _parse_delimited,
    _remap,
    _where,
)
from jaxrec.data.interactions import Interactions, Split
from jaxrec.errors import JaxrecError

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


def write_table(inter: Interactions, path: PathLike) -> Path:
    """Write ``inter``'s (user, item) pairs with the header ``user_id,item_id`` (the columns
    :func:`read_table` reads by default): CSV (``.csv``), TSV (``.tsv``) or Parquet (``.parquet`` /
    ``.pq``, needs ``pyarrow``). Ids are written as the integer indices."""
    path = Path(path)
    suffix = path.suffix.lower()
    users, items = np.asarray(inter.users, np.int64), np.asarray(inter.items, np.int64)
    if suffix in (".parquet", ".pq"):
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise JaxrecError(f"{path}: writing Parquet needs pyarrow (pip install 'jaxrec[parquet]')") from None
        pq.write_table(pa.table({"user_id": users, "item_id": items}), path)
        return path
    sep = {".csv": ",", ".tsv": "\t"}.get(suffix)
    if sep is None:
        raise JaxrecError(f"{path}: write .csv, .tsv or .parquet (got {suffix or 'no extension'!r})")
    with open(path, "w") as f:
        f.write(f"user_id{sep}item_id\n")
        step = 1 << 20
        for s in range(0, len(users), step):  # formatted a million rows at a time
            block = np.char.add(np.char.add(users[s : s + step].astype(str), sep), items[s : s + step].astype(str))
            f.write("\n".join(block.tolist()) + "\n")
    return path
