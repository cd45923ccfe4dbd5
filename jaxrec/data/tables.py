"""Generic tables: CSV / TSV with a header row (or ``columns`` for a header-less file) and named
columns, Parquet when ``pyarrow`` is installed (:func:`read_table`), and a predefined train / test
(/ valid) set of such files in one id space (:func:`read_split_files`).

Raw ids (ints or strings) are remapped to 0-based contiguous indices in sorted raw-id order, as
every reader does (:mod:`jaxrec.data.loaders`); every problem names the file, the 1-based line and
the column (the parser is :mod:`jaxrec.data.delimited`).

Columns: ``user_col`` / ``item_col`` name the ids; a column named ``rating`` or ``timestamp``
(:data:`CONVENTIONAL`, MovieLens' names) is read as the ratings / timestamps when no other column
is given for that role (``rating_col`` / ``time_col``; ``""`` reads none), and validated like a
named one. Every other column is reported once, as one ``warning:`` line on stderr naming the file
and the columns, never dropped silently (a conventional column whose role is given as ``""`` is
left out on purpose, and not reported).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxrec.data.delimited import (  # the shared delimited-text parser
    _ROLE_WORD,
    PathLike,
    _check_file,
    _interactions,
    _parse_delimited,
    _read_header,
    _remap,
    _to_int,
    _where,
    finite_number,
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


#: header names read as a role when no column is given for it (``rating_col`` / ``time_col`` None):
#: MovieLens' ratings.csv header, and the roles' own words
CONVENTIONAL = {"rating": "rating", "time": "timestamp"}
#: the settings that name a role's column: (config key, ``jaxrec data info`` flag)
_SETTINGS = {
    "user": ("data.user_col", "--user-col"),
    "item": ("data.item_col", "--item-col"),
    "rating": ("data.rating_col", "--rating-col"),
    "time": ("data.time_col", "--time-col"),
}
_WARNED: set[tuple[str, tuple[str, ...]]] = set()  # (file, unused columns) already reported


def _fields(user_col, item_col, rating_col, time_col) -> dict[str, str]:
    """The columns given for the roles (role -> name); ``""`` for rating / time: none, not even
    a conventionally named column (:data:`CONVENTIONAL`)."""
    fields = {"user": user_col, "item": item_col}
    for role, col, what in (("user", user_col, "user_col"), ("item", item_col, "item_col")):
        if not col:
            raise JaxrecError(f"{what}: the {_ROLE_WORD[role]} column's name must not be empty")
    if rating_col is not None:
        fields["rating"] = rating_col
    if time_col is not None:
        fields["time"] = time_col
    cols = [c for c in fields.values() if c]
    dup = {c for c in cols if cols.count(c) > 1}
    if dup:
        raise JaxrecError(f"the same column is given for two roles: {sorted(dup)}")
    return fields


def _check_id_dtype(id_dtype):
    if id_dtype not in (None, "int", "str"):
        raise JaxrecError(f"id_dtype must be None, 'int' or 'str', got {id_dtype!r}")


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def _delimiter(path: Path, delimiter: str | None) -> str:
    if delimiter is None:
        delimiter = _DELIMITERS.get(path.suffix.lower()) or _sniff_delimiter(path)
    if not delimiter:
        raise JaxrecError(f"{path}: the delimiter must not be empty")
    return delimiter


def _column_names(path: Path, delimiter: str | None, columns: Sequence[str]) -> list[str]:
    """The names of a table's columns: a Parquet file's schema, a delimited file's header row, or
    ``columns`` (a header-less file's column order)."""
    if _is_parquet(path):
        if columns:
            raise JaxrecError(f"{path}: a Parquet file names its columns itself; give no column order")
        return list(_parquet_file(path).schema_arrow.names)
    if columns:
        if len(set(columns)) != len(columns):
            raise JaxrecError(f"{path}: the column order names a column twice: {list(columns)}")
        return list(columns)
    delimiter = _delimiter(path, delimiter)
    _check_file(path)
    return _read_header(path, delimiter, len(delimiter) == 1)


def _resolve(fields: dict[str, str], names: Sequence[Sequence[str]]) -> tuple[dict[str, str], set[str], set[str]]:
    """(the columns to read, the roles read by a conventional name, the roles given as ``""``):
    ``fields`` without the roles given as ``""``, plus each role not given whose
    :data:`CONVENTIONAL` column every file in ``names`` has (and no other role reads)."""
    out = {role: col for role, col in fields.items() if col}
    auto = set()
    for role, col in CONVENTIONAL.items():
        if role not in fields and col not in out.values() and all(col in n for n in names):
            out[role] = col
            auto.add(role)
    return out, auto, {role for role, col in fields.items() if not col}


@contextlib.contextmanager
def _conventional_note(fields: dict[str, str], auto: set[str]):
    """An error about a column read by its conventional name says so, and how to ignore it."""
    try:
        yield
    except JaxrecError as e:
        msg = str(e)
        for role in sorted(auto):
            col = fields[role]
            if f"column {col!r}" in msg:
                key, flag = _SETTINGS[role]
                raise JaxrecError(
                    f"{msg} (the column {col!r} is read as the {_ROLE_WORD[role]}s because of its name; "
                    f'to ignore it, set {key}: "" (jaxrec data info {flag} ""))'
                ) from None
        raise


def _warn_unused(path: Path, names: Sequence[str], fields: dict[str, str], declined: set[str]) -> None:
    """One ``warning:`` line on stderr naming ``path``'s columns that no role reads (once per file
    and columns in a process), and the settings that read one as a role not yet read. A role
    ``declined`` (given as ``""``) is neither suggested nor is its conventional column reported:
    the setting said not to read it."""
    skipped = {CONVENTIONAL[role] for role in declined if role in CONVENTIONAL}
    unused = tuple(n for n in names if n not in fields.values() and n not in skipped)
    if not unused or (str(path), unused) in _WARNED:
        return
    _WARNED.add((str(path), unused))
    read = ", ".join(f"{_ROLE_WORD[role]} {col!r}" for role, col in fields.items())
    listed = ", ".join(repr(n) for n in unused)
    msg = f"warning: {path}: {'column' if len(unused) == 1 else 'columns'} {listed} not used (read: {read})"
    free = [role for role in ("rating", "time") if role not in fields and role not in declined]
    if free:
        keys = " / ".join(_SETTINGS[role][0] for role in free)
        flags = " / ".join(_SETTINGS[role][1] for role in free)
        what = " or ".join(_ROLE_WORD[r] + "s" for r in free)
        msg += f"; to read one as the {what}, set {keys} (jaxrec data info {flags})"
    print(msg, file=sys.stderr)


def _read_columns(
    path: PathLike,
    fields: dict[str, str],
    delimiter: str | None,
    id_dtype: str | None,
    columns: Sequence[str] = (),
) -> dict[str, np.ndarray]:
    """``fields``' columns (resolved: :func:`_resolve`) of one table file."""
    path = Path(path)
    if _is_parquet(path):
        return _parquet_columns(path, fields, id_dtype)
    delimiter = _delimiter(path, delimiter)
    return _parse_delimited(
        path,
        delimiter=delimiter,
        header=not columns,
        names=list(columns) or None,
        fields=fields,
        id_dtype=id_dtype,
        quoted=len(delimiter) == 1,
        delimiter_hint=True,
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
      rating_col, time_col: header names of the rating / timestamp columns. ``None`` (default):
        a column named ``rating`` / ``timestamp`` when there is one; ``""``: none. Ratings must be
        finite numbers; timestamps integers (floats are truncated); a bad value is an error naming
        the file, line, column and value.
      id_dtype: ``None`` (a column whose every value is an integer becomes int64 ids, otherwise
        the ids stay strings, e.g. ``"007"`` becomes 7), ``"int"`` (non-integers are errors) or
        ``"str"`` (ids kept exactly as written).
      columns: for a file without a header, the names of its columns in order (e.g.
        ``["user_id", "item_id", "rating", "timestamp"]`` for MovieLens' ``u1.base``); the
        ``*_col`` arguments pick among them.

    Returns Interactions with ids remapped to sorted raw-id order (``user_ids`` / ``item_ids`` hold
    the raw ids). Other columns are not read (one ``warning:`` line on stderr names them), but
    every line must have as many fields as the header.
    """
    _check_id_dtype(id_dtype)
    path = Path(path)
    names = _column_names(path, delimiter, columns)
    fields, auto, declined = _resolve(_fields(user_col, item_col, rating_col, time_col), [names])
    with _conventional_note(fields, auto):
        cols = _read_columns(path, fields, delimiter, id_dtype, columns)
    _warn_unused(path, names, fields, declined)
    return _interactions(cols, str(path))


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
    path = Path(path)
    names = list(_parquet_file(path).schema_arrow.names)
    fields, auto, declined = _resolve(_fields(user_col, item_col, rating_col, time_col), [names])
    with _conventional_note(fields, auto):
        cols = _parquet_columns(path, fields, id_dtype)
    _warn_unused(path, names, fields, declined)
    return _interactions(cols, str(path))


def _parquet_file(path: Path):
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
        return pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises its own error types for broken files
        raise JaxrecError(f"{path}: not a readable Parquet file ({e})") from None


def _parquet_columns(path: Path, fields: dict[str, str], id_dtype) -> dict[str, np.ndarray]:
    pf = _parquet_file(path)
    names = list(pf.schema_arrow.names)
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
        if values.dtype.kind in "OUS":  # text: numbers written out, as in a CSV file
            return _parquet_text_numbers(where, role, values)
        raise JaxrecError(f"{where}: {_ROLE_WORD[role]}s must be numeric, got {values.dtype}")
    values = values.astype(np.float64 if role == "rating" else values.dtype)
    if np.issubdtype(values.dtype, np.floating) and not np.all(np.isfinite(values)):
        row = int(np.flatnonzero(~np.isfinite(values))[0])
        raise JaxrecError(f"{where}, row {row + 1}: {_ROLE_WORD[role]} {values[row]} is not finite")
    return values if role == "rating" else values.astype(np.int64)


def _parquet_text_numbers(where: str, role: str, values: np.ndarray) -> np.ndarray:
    """A Parquet text column of ratings / timestamps -> numbers, as the CSV reader parses them; the
    first value that is not one is an error naming its row and the value."""
    out = []
    for row, v in enumerate(values.tolist(), 1):
        s = (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)).strip()
        x = finite_number(s, f"{where}, row {row}", _ROLE_WORD[role])
        if role == "time":
            try:
                x = _to_int(s)
            except ValueError:
                x = int(x)
        out.append(x)
    if role == "rating":
        return np.asarray(out, dtype=np.float64)
    try:
        return np.asarray(out, dtype=np.int64)
    except OverflowError:
        raise JaxrecError(f"{where}: a timestamp does not fit in int64") from None


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
    A ``rating`` / ``timestamp`` column is read by its name (``rating_col`` / ``time_col`` None)
    only when every file has it.
    """
    from jaxrec.data.split import split_info

    _check_id_dtype(id_dtype)
    paths = {"train": train, "valid": valid, "test": test}
    paths = {k: Path(p) for k, p in paths.items() if p is not None}
    names = {k: _column_names(p, delimiter, columns) for k, p in paths.items()}
    fields, auto, declined = _resolve(_fields(user_col, item_col, rating_col, time_col), list(names.values()))
    with _conventional_note(fields, auto):
        cols = {k: _read_columns(p, fields, delimiter, id_dtype, columns) for k, p in paths.items()}
        for role in ("user", "item"):
            if len({c[role].dtype.kind for c in cols.values()}) > 1:
                cols = {k: _read_columns(p, fields, delimiter, "str", columns) for k, p in paths.items()}
                break
    for k, p in paths.items():
        _warn_unused(p, names[k], fields, declined)
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
