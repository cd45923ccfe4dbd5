"""Delimited text files -> column arrays: the shared parser of every text reader.

:func:`_parse_delimited` reads a delimiter-separated file (with or without a header) into
``{role: array}`` columns for the roles user, item, rating and time: ``np.loadtxt``'s C parser
when it can, else a line-by-line pass that reports the first bad line (file, 1-based line,
column) or reads what the fast path cannot (string ids, quoted fields). Raw ids are remapped to
0-based contiguous indices in sorted raw-id order (:func:`_remap`). The format readers are in
:mod:`jaxrec.data.loaders`. A file whose header or rows do not split on the delimiter but would on
a tab, ``;`` or ``|`` is reported as such, with the setting to change (:func:`_delimiter_hint`).
"""

from __future__ import annotations

import csv
import io
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from jaxrec.data.interactions import Interactions
from jaxrec.errors import JaxrecError

PathLike = str | os.PathLike

_ROLE_WORD = {"user": "user id", "item": "item id", "rating": "rating", "time": "timestamp"}


# ------------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------------
def finite_number(s: str, where: str, what: str) -> float:
    """``s`` as a finite float; else one error ``<where>: <what> 's' is not a number / finite``."""
    try:
        x = float(s)
    except ValueError:
        raise JaxrecError(f"{where}: {what} {s!r} is not a number") from None
    if not math.isfinite(x):
        raise JaxrecError(f"{where}: {what} {s!r} is not finite")
    return x


def _where(path, line: int | None = None, column: str | None = None) -> str:
    s = str(path)
    if line is not None:
        s += f", line {line}"
    if column is not None:
        s += f", column {column!r}"
    return s


def _check_file(path: Path) -> None:
    """Raise a JaxrecError unless ``path`` is a readable file with some non-blank content."""
    if not path.exists():
        raise JaxrecError(f"{path}: no such file")
    if not path.is_file():
        raise JaxrecError(f"{path}: not a file")
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 16):
                if chunk.strip(b" \t\r\n\x0b\x0c\xef\xbb\xbf"):
                    return
    except OSError as e:
        raise JaxrecError(f"{path}: cannot read the file ({e.strerror})") from None
    raise JaxrecError(f"{path}: the file is empty")


def _read_text(path: Path) -> str:
    _check_file(path)
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise JaxrecError(f"{_where(path, line)}: not valid UTF-8 text") from None


def _remap(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw ids ``[N]`` -> (indices ``[N]`` int32, sorted unique raw ids ``[n]``)."""
    ids, inverse = np.unique(raw, return_inverse=True)
    return inverse.reshape(-1).astype(np.int32), ids


# ------------------------------------------------------------------------------------------------
# delimited text: header, fast numeric path, line-by-line path
# ------------------------------------------------------------------------------------------------
def _split_line(line: str, delimiter: str, quoted: bool) -> list[str]:
    if quoted:
        return next(csv.reader([line], delimiter=delimiter), [])
    return line.split(delimiter)


def _read_header(path: Path, delimiter: str, quoted: bool) -> list[str]:
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        line = f.readline().rstrip("\r\n")
    if not line.strip():
        raise JaxrecError(f"{_where(path, 1)}: expected a header row naming the columns")
    names = [n.strip() for n in _split_line(line, delimiter, quoted)]
    seen: dict[str, int] = {}
    for k, n in enumerate(names):
        if not n:
            raise JaxrecError(f"{_where(path, 1)}: header field {k + 1} is empty")
        if n in seen:
            raise JaxrecError(
                f"{_where(path, 1, n)}: duplicate column name in the header (fields {seen[n] + 1} and {k + 1})"
            )
        seen[n] = k
    return names


#: other common field separators: (name, as YAML writes it, as a shell writes it)
_OTHER_DELIMITERS = {"\t": ("tab", '"\\t"', "$'\\t'"), ";": ("semicolon", '";"', "';'"), "|": ("pipe", '"|"', "'|'")}


def _delimiter_hint(text: str, delimiter: str, n_split: int) -> str | None:
    """When ``text`` (a header or a row that split into ``n_split`` fields on ``delimiter``) splits
    into more fields on another common separator: a sentence naming it and the settings to give."""
    best = max(
        (d for d in _OTHER_DELIMITERS if d != delimiter and d in text),
        key=lambda d: len(text.split(d)),
        default=None,
    )
    if best is None or len(text.split(best)) <= n_split:
        return None
    name, yaml_value, shell_value = _OTHER_DELIMITERS[best]
    return (
        f"the file looks {name}-separated, not {delimiter!r}-separated: set data.delimiter: {yaml_value} "
        f"(jaxrec data info --delimiter {shell_value})"
    )


def _column_index(path: Path, names: list[str], fields: dict[str, str], delimiter: str | None = None) -> dict[str, int]:
    """Role -> field index of ``fields``' columns in ``names``. ``delimiter``: the header's, to
    say when the header did not split on it but would on another separator."""
    index = {}
    for role, col in fields.items():
        if col not in names:
            hint = _delimiter_hint(names[0], delimiter, 1) if delimiter and len(names) == 1 else None
            if hint:
                raise JaxrecError(f"{_where(path, 1)}: the header {names[0]!r} has no {delimiter!r}; {hint}")
            raise JaxrecError(
                f"{_where(path, 1, col)}: missing {role} column {col!r} in the header; "
                f"the columns are {names} (a file without a header row? give the column names in order)"
            )
        index[role] = names.index(col)
    return index


def _iter_rows(path: Path, text: str, delimiter: str, quoted: bool, skip: int) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(1-based line number, fields)`` for every non-blank line after ``skip`` lines."""
    if quoted:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise JaxrecError(f"{_where(path, reader.line_num)}: malformed CSV ({e})") from None
            if reader.line_num <= skip or not row or (len(row) == 1 and not row[0].strip()):
                continue
            yield reader.line_num, row
    for n, line in enumerate(text.split("\n"), 1):
        if n <= skip or not line.strip():
            continue
        yield n, line.rstrip("\r").split(delimiter)


def _to_int(s: str) -> int:
    s = s.strip()
    if not s or not (s.isdigit() or (s[0] in "+-" and s[1:].isdigit())):
        raise ValueError(s)
    return int(s)


def _parse_slow(
    path: Path,
    text: str,
    *,
    delimiter: str,
    quoted: bool,
    skip: int,
    n_fields: int,
    index: dict[str, int],
    names: list[str],
    id_dtype: str | None,
    delimiter_hint: bool = False,
) -> dict[str, np.ndarray]:
    """Line-by-line parse with exact error locations (also the path for string ids)."""
    vals: dict[str, list] = {role: [] for role in index}
    lines: list[int] = []
    shown = repr(delimiter)
    for line_no, row in _iter_rows(path, text, delimiter, quoted, skip):
        if len(row) != n_fields:
            msg = f"{_where(path, line_no)}: expected {n_fields} fields separated by {shown}, found {len(row)}"
            hint = _delimiter_hint(delimiter.join(row), delimiter, len(row)) if delimiter_hint else None
            raise JaxrecError(f"{msg}; {hint}" if hint and len(row) < n_fields else msg)
        lines.append(line_no)
        for role, k in index.items():
            s = row[k].strip()
            col = names[k]
            if role in ("user", "item"):
                if not s:
                    raise JaxrecError(f"{_where(path, line_no, col)}: empty {_ROLE_WORD[role]}")
                vals[role].append(s)
            elif role == "rating":
                vals[role].append(finite_number(s, _where(path, line_no, col), "rating"))
            else:  # time
                try:
                    t = _to_int(s)
                except ValueError:
                    try:
                        f = float(s)
                    except ValueError:
                        f = math.nan
                    if not math.isfinite(f):
                        raise JaxrecError(f"{_where(path, line_no, col)}: timestamp {s!r} is not a number") from None
                    t = int(f)
                vals[role].append(t)
    if not lines:
        raise JaxrecError(f"{path}: no data rows" + (" after the header" if skip else ""))
    out: dict[str, np.ndarray] = {}
    for role, v in vals.items():
        if role in ("user", "item"):
            out[role] = _ids_array(path, v, lines, names[index[role]], role, id_dtype)
        elif role == "rating":
            out[role] = np.asarray(v, dtype=np.float64)
        else:
            try:
                out[role] = np.asarray(v, dtype=np.int64)
            except OverflowError:
                raise JaxrecError(f"{path}: a timestamp does not fit in int64") from None
    return out


def _ids_array(path, values, lines, col, role, id_dtype) -> np.ndarray:
    """Strings -> int64 ids (all integers, or ``id_dtype='int'``) or str ids."""
    if id_dtype == "str":
        return np.asarray(values, dtype=str)
    ints = []
    for s, line_no in zip(values, lines):
        try:
            ints.append(_to_int(s))
        except ValueError:
            if id_dtype == "int":
                raise JaxrecError(f"{_where(path, line_no, col)}: {_ROLE_WORD[role]} {s!r} is not an integer") from None
            return np.asarray(values, dtype=str)
    try:
        return np.asarray(ints, dtype=np.int64)
    except OverflowError:
        if id_dtype == "int":
            raise JaxrecError(f"{path}: a {_ROLE_WORD[role]} does not fit in int64") from None
        return np.asarray(values, dtype=str)


def _parse_fast(
    source, *, delimiter: str, skip: int, n_fields: int, index: dict[str, int]
) -> dict[str, np.ndarray] | None:
    """``np.loadtxt`` over an all-numeric file; ``None`` when anything looks wrong."""
    kind = {k: r for r, k in index.items()}
    dtype = [(f"f{k}", "f8" if kind.get(k) in ("rating", None) else "i8") for k in range(n_fields)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = np.loadtxt(
                source,
                delimiter=delimiter,
                dtype=dtype,
                comments=None,
                skiprows=skip,
                ndmin=1,
                encoding="utf-8-sig",
            )
    except (ValueError, TypeError, OverflowError, UnicodeDecodeError):
        return None
    if a.shape[0] == 0:
        return None
    out = {role: np.ascontiguousarray(a[f"f{k}"]) for role, k in index.items()}
    if "rating" in out and not np.all(np.isfinite(out["rating"])):
        return None
    return out


def _parse_delimited(
    path: PathLike,
    *,
    delimiter: str,
    header: bool,
    names: Sequence[str] | None = None,
    fields: dict[str, str],
    id_dtype: str | None,
    quoted: bool,
    id_range: tuple[int, int] | None = None,
    delimiter_hint: bool = False,
) -> dict[str, np.ndarray]:
    """Parse ``path`` into ``{role: [N] array}`` for the roles in ``fields`` (role -> column name).

    ``header=True``: the first non-blank line names the columns. Otherwise ``names`` does.
    ``id_range=(lo, hi)``: integer user / item ids must lie in ``[lo, hi)`` (a format whose ids
    are positive integers, e.g. MovieLens); another id is a malformed line, named.
    ``delimiter_hint``: the delimiter is a setting (``data.delimiter``): a header or row that
    splits into too few fields on it but more on a tab, ``;`` or ``|`` says so.
    """
    path = Path(path)
    _check_file(path)
    if header:
        names = _read_header(path, delimiter, quoted)
    names = list(names)
    index = _column_index(path, names, fields, delimiter if header and delimiter_hint else None)
    skip = 1 if header else 0
    n_fields = len(names)
    if id_dtype != "str":
        if len(delimiter) == 1:
            fast = _parse_fast(path, delimiter=delimiter, skip=skip, n_fields=n_fields, index=index)
        else:  # e.g. MovieLens '::': loadtxt takes one-character delimiters; stream, replaced
            with open(path, encoding="utf-8-sig") as f:
                lines = (line.replace(delimiter, "\t") for line in f)
                fast = _parse_fast(lines, delimiter="\t", skip=skip, n_fields=n_fields, index=index)
        if fast is not None:
            return _check_id_range(path, fast, id_range, delimiter, quoted, skip, index, names)
    text = _read_text(path)
    out = _parse_slow(
        path,
        text,
        delimiter=delimiter,
        quoted=quoted,
        skip=skip,
        n_fields=n_fields,
        index=index,
        names=names,
        id_dtype=id_dtype,
        delimiter_hint=delimiter_hint,
    )
    return _check_id_range(path, out, id_range, delimiter, quoted, skip, index, names, text)


def _check_id_range(path, cols, id_range, delimiter, quoted, skip, index, names, text=None) -> dict:
    """``cols`` when every user / item id lies in ``id_range``; else an error naming the first
    bad line (found by reading the file again: errors only)."""
    if id_range is None:
        return cols
    lo, hi = id_range
    for role in ("user", "item"):
        ids = cols[role]
        if ids.dtype.kind not in "iu":
            continue
        bad = np.flatnonzero((ids < lo) | (ids >= hi))
        if bad.size:
            text = _read_text(path) if text is None else text
            rows = _iter_rows(path, text, delimiter, quoted, skip)
            line_no = next(n for i, (n, _) in enumerate(rows) if i == bad[0])
            raise JaxrecError(
                f"{_where(path, line_no, names[index[role]])}: {_ROLE_WORD[role]} {int(ids[bad[0]])} is outside "
                f"[{lo}, {hi}) (ids in this format are positive integers)"
            )
    return cols


def _interactions(cols: dict[str, np.ndarray], source: str) -> Interactions:
    users, user_ids = _remap(cols["user"])
    items, item_ids = _remap(cols["item"])
    return Interactions(
        users=users,
        items=items,
        n_users=len(user_ids),
        n_items=len(item_ids),
        ratings=cols.get("rating"),
        timestamps=cols.get("time"),
        user_ids=user_ids,
        item_ids=item_ids,
        source=source,
    )
