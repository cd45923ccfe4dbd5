"""A trained model's outputs as files: recommendations (``jaxrec recommend``) and embeddings
(``jaxrec export``).

Recommendations stream chunk by chunk (:meth:`TrainedModel.recommend_chunks`), so writing every
user's list holds one chunk in memory:

* ``csv`` / ``parquet``: one row per (user, rank): ``user, rank, item, score``;
* ``json``: one document ``{"<raw user>": {"items": [...], "scores": [...]}}``;
* ``table``: a rich table, one row per user (for reading, not parsing).

Embeddings: ``.npz`` holds ``user_embeddings [n_users, D]``, ``item_embeddings [n_items, D]``
(float32), ``user_ids``, ``item_ids`` (integers or fixed-width strings, never pickled objects)
and ``dot_product`` (whether the user-item dot product is the model's score); ``.parquet`` is one
table with the columns ``kind`` (``user`` / ``item``), ``id`` and ``embedding`` (a fixed-size
list of float32), its metadata holding ``dot_product``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from jaxrec.data.stored import plain_ids
from jaxrec.errors import JaxrecError
from jaxrec.experiment.output import atomic_write
from jaxrec.experiment.trained import Recommendations, TrainedModel

FORMATS = ("table", "csv", "json", "parquet")  #: recommendation formats
SUFFIXES = {".csv": "csv", ".json": "json", ".parquet": "parquet"}


def recommendation_format(fmt: str | None, out: str | None) -> str:
    """The format asked for: ``fmt``, else ``out``'s suffix, else ``table``; checked."""
    if fmt is None:
        fmt = SUFFIXES.get(Path(out).suffix.lower(), None) if out else "table"
        if fmt is None:
            raise JaxrecError(
                f"--out: cannot tell the format of {out} from its suffix; give --format {'|'.join(FORMATS)}"
            )
    if fmt not in FORMATS:
        raise JaxrecError(f"--format: {fmt!r} is not one of {list(FORMATS)}")
    if fmt == "parquet" and not out:
        raise JaxrecError("--format parquet: give --out FILE.parquet (parquet is not written to a terminal)")
    return fmt


@contextlib.contextmanager
def _sink(out: str | None, binary: bool = False):
    """A file object for ``out`` written to a temporary file and renamed into place on success
    (stdout when ``out`` is None)."""
    if out is None:
        yield sys.stdout
        return
    path = Path(out)
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_out(out: str | None) -> None:
    """An ``--out`` whose directory does not exist is refused before any work."""
    if out is not None and not Path(out).absolute().parent.is_dir():
        raise JaxrecError(f"--out: the directory of {out} does not exist")


def write_recommendations(chunks: Iterable[Recommendations], fmt: str, out: str | None = None) -> int:
    """Write the streamed ``chunks`` in ``fmt`` to ``out`` (stdout when None); returns the
    number of users written."""
    n = 0
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        with _sink(out, binary=True) as f:
            writer = None
            for rec in chunks:
                rows = rec.rows()
                n += len(rec.items)
                table = pa.Table.from_pylist(rows) if rows else None
                if table is None:
                    continue
                writer = writer or pq.ParquetWriter(f, table.schema)
                writer.write_table(table)
            if writer is not None:
                writer.close()
        return n
    with _sink(out) as f:
        if fmt == "json":
            f.write("{")
            first = True
            for rec in chunks:
                n += len(rec.items)
                for user, entry in rec.to_dict().items():
                    f.write(("" if first else ",") + "\n" + json.dumps(user) + ": " + json.dumps(entry))
                    first = False
            f.write("\n}\n")
        elif fmt == "csv":
            f.write("user,rank,item,score\n")
            for rec in chunks:
                n += len(rec.items)
                f.writelines(f"{r['user']},{r['rank']},{r['item']},{r['score']:.9g}\n" for r in rec.rows())
        else:
            from rich.console import Console
            from rich.table import Table

            table = Table(title="recommendations")
            for col in ("user", "items (best first)", "scores"):
                table.add_column(col)
            k = 10
            for rec in chunks:
                n, k = n + len(rec.items), rec.items.shape[1]
                for user, entry in rec.to_dict().items():
                    table.add_row(
                        user, " ".join(map(str, entry["items"])), " ".join(f"{s:.4f}" for s in entry["scores"])
                    )
            Console(file=f, width=max(120, 24 + 16 * k)).print(table)
    return n


def embeddings_payload(model: TrainedModel) -> dict:
    """The arrays of an embedding export (see the module docstring)."""
    return {
        "user_embeddings": model.user_embeddings(),
        "item_embeddings": model.item_embeddings(),
        "user_ids": plain_ids(model.user_ids, model.split.n_users),
        "item_ids": plain_ids(model.item_ids, model.split.n_items),
        "dot_product": np.asarray(bool(getattr(model.model, "dot_product", False))),
    }


def write_embeddings(model: TrainedModel, path: str | Path) -> Path:
    """Export ``model``'s embeddings to ``path`` (``.npz`` or ``.parquet``); returns it."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".parquet"):
        raise JaxrecError(f"--embeddings: {path} must end in .npz or .parquet")
    check_out(str(path))
    arrays = embeddings_payload(model)
    if suffix == ".npz":
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write(path, buf.getvalue())
        return path
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = [arrays["user_ids"], arrays["item_ids"]]
    if any(i.dtype.kind == "U" for i in ids):
        ids = [i.astype(str) for i in ids]
    vecs = np.concatenate([arrays["user_embeddings"], arrays["item_embeddings"]])
    kinds = ["user"] * len(ids[0]) + ["item"] * len(ids[1])
    table = pa.table(
        {
            "kind": pa.array(kinds),
            "id": pa.array(np.concatenate(ids)),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), vecs.shape[1]),
        }
    ).replace_schema_metadata({"dot_product": json.dumps(bool(arrays["dot_product"]))})
    with _sink(str(path), binary=True) as f:
        pq.write_table(table, f)
    return path
